"""The one training loop (eie_jax/training/trainer.py): counted steps, hooks, the learning rate set
from progress, and the time budget."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from eie_jax.compression.layers import MaskedLinear
from eie_jax.training import trainer


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def _data(steps, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((6, 3)).astype(np.float32)
    for _ in range(steps):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        yield x, x @ w


def test_counted_steps_hooks_and_a_falling_loss():
    model = MaskedLinear(6, 3, rngs=nnx.Rngs(0))
    optimizer = trainer.make_optimizer(model, optax.cosine_decay_schedule(0.05, 40))
    seen, reports = [], []
    before = float(np.mean([_loss(model, x, y) for x, y in _data(5)]))
    record = trainer.fit(
        model, optimizer, _loss, _data(40), steps=40, on_step=seen.append, every=15,
        on_every=lambda step, loss, lr, seconds: reports.append((step, loss, lr)),
    )  # fmt: skip
    assert record["steps"] == 40 and seen == list(range(40))
    assert [r[0] for r in reports] == [15, 30, 40] and all(r[2] is None for r in reports)
    assert record["train_loss"] == reports[-1][1]
    after = float(np.mean([_loss(model, x, y) for x, y in _data(5)]))
    assert after < 0.5 * before


@pytest.mark.parametrize("kind", trainer.OPTIMIZERS)
def test_progress_learning_rate_is_set_before_every_step(kind):
    model = MaskedLinear(6, 3, rngs=nnx.Rngs(0))
    rate = trainer.warmup_cosine(0.1, warmup=4)
    optimizer = trainer.make_optimizer(model, rate, kind=kind, weight_decay=1e-3)
    rates = []
    trainer.fit(
        model, optimizer, _loss, _data(20), steps=20, learning_rate=rate, every=1,
        on_every=lambda step, loss, lr, seconds: rates.append(lr),
    )  # fmt: skip
    expected = [0.1 * min(1.0, (s + 1) / 4) * 0.5 * (1 + np.cos(np.pi * s / 20)) for s in range(20)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    held = optimizer.opt_state.hyperparams["learning_rate"][...]
    assert float(held) == pytest.approx(expected[-1], rel=1e-6)


def test_time_budget_ends_the_run_early_and_says_so():
    model = MaskedLinear(6, 3, rngs=nnx.Rngs(0))
    rate = trainer.warmup_cosine(0.1)
    optimizer = trainer.make_optimizer(model, rate)
    record = trainer.fit(
        model, optimizer, _loss, _data(10_000), steps=10_000, learning_rate=rate,
        minutes=0.5 / 60,
    )  # fmt: skip
    assert 0 < record["steps"] < 10_000 and record["budget_stop"]
    assert record["seconds"] >= 0.5  # it ran until the cap, then stopped
    whole = trainer.fit(
        model, trainer.make_optimizer(model, rate), _loss, _data(5), steps=5,
        learning_rate=rate, minutes=10.0,
    )  # fmt: skip
    assert whole["steps"] == 5 and not whole["budget_stop"]


def test_unknown_optimizer_is_named():
    model = MaskedLinear(6, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kind='lamb'"):
        trainer.make_optimizer(model, 0.1, kind="lamb")
