"""The hardware loss: EIE's expected cycles over a model's FC layers, and what it trains."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import lenet_300_100
from eie_jax import eie
from eie_jax.compression import layers
from eie_jax.compression.layers import MaskedLinear
from eie_jax.training import hw_loss


class _Toy(nnx.Module):
    """One FC layer (or two with a ReLU between), fed its input as is."""

    def __init__(self, sizes, *, rngs):
        self.fc1 = MaskedLinear(sizes[0], sizes[1], rngs=rngs)
        self.fc2 = MaskedLinear(sizes[1], sizes[2], rngs=rngs) if len(sizes) > 2 else None

    def __call__(self, x):
        y = self.fc1(x)
        return y if self.fc2 is None else self.fc2(jax.nn.relu(y))


def _spec(**kw):
    values = dict(weight=1.0, num_pes=4, fifo_depth=2, temperature=0.5)
    values.update(kw)
    cfg = eie.EIEConfig(num_pes=values["num_pes"], fifo_depth=values["fifo_depth"])
    return hw_loss.HWLoss(
        weight=values["weight"],
        eie=cfg,
        temperature=values["temperature"],
        keep_temperature=values.get("keep_temperature", 0.25),
        act_temperature=values.get("act_temperature", 0.0),
    )


def _inputs(shape, seed=0, zeros=0.4):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(np.float32)
    return jnp.asarray(np.where(rng.random(shape) < zeros, 0.0, x))


def _skewed_toy(keep=0.25):
    """16 x 8 (W is 16 outputs x 8 inputs); PE 0 of 4 holds every top score: a slow mask."""
    model = _Toy((8, 16), rngs=nnx.Rngs(0))
    rows = np.arange(16) % 4 == 0  # the output rows of PE 0
    scores = np.where(rows[None, :], 2.0, 1.0) + np.random.default_rng(1).normal(0, 0.01, (8, 16))
    model.fc1.enable_scores(jnp.asarray(scores, jnp.float32), keep_fraction=keep)
    return model


def test_topk_matches_a_stable_argsort_with_ties():
    rng = np.random.default_rng(0)
    topk = jax.jit(layers._topk)  # one compile: the shape is fixed, the fraction traced
    for trial in range(40):
        scores = rng.normal(size=(7, 9)) if trial % 2 else rng.integers(-2, 3, (7, 9))  # ties
        scores = jnp.asarray(scores, jnp.float32)
        allowed = jnp.asarray(rng.random((7, 9)) < rng.random(), jnp.float32)
        frac = float(rng.choice([0.0, 0.1, 0.5, 1.0, rng.random()]))
        mask, threshold = topk(scores, allowed, frac)
        flat = np.where(np.asarray(allowed).ravel() > 0, np.asarray(scores).ravel(), -np.inf)
        k = round(frac * float(allowed.sum()))
        expect = np.zeros(flat.size, bool)
        expect[np.argsort(-flat, kind="stable")[:k]] = True
        expect &= np.isfinite(flat)
        np.testing.assert_array_equal(np.asarray(mask).ravel() > 0, expect)
        dropped = np.isfinite(flat) & ~expect
        if expect.any():
            assert flat[expect].min() >= threshold
        if dropped.any():
            assert flat[dropped].max() <= threshold


def test_keep_prob_tends_to_the_hard_top_k_mask():
    model = _skewed_toy()
    hard = np.asarray(model.fc1.hard_mask())
    assert hard.sum() == 32
    soft = np.asarray(model.fc1.keep_prob(1e-4))
    np.testing.assert_allclose(soft, hard, atol=1e-6)
    warm = np.asarray(model.fc1.keep_prob(1.0))
    assert 0 < warm.min() and warm.max() < 1  # a probability, not the mask


def test_loss_is_exact_eie_cycles_for_one_input_and_hard_masks():
    """With 0/1 keeps, one input (0/1 activations) and hard maxima: simulate()'s cycles."""
    model = _skewed_toy()
    x = _inputs((1, 8), seed=3)
    spec = _spec(temperature=0.0, keep_temperature=1e-4)
    codes = np.asarray(model.fc1.hardware_mask()).astype(np.int32)
    encoded = eie.encode(codes, np.array([0.0, 1.0], np.float32), spec.eie.replace(weight_bits=1))
    res = eie.simulate(encoded, x[0], spec.eie.replace(weight_bits=1))
    (cycles,) = hw_loss.layer_cycles(model, x, spec)
    assert float(cycles) == pytest.approx(float(res.total_cycles), abs=1e-3)
    assert float(hw_loss.hardware_loss(model, x, spec)) == pytest.approx(float(cycles) / 8)


def test_gradient_is_nonzero_and_a_few_steps_lower_expected_cycles():
    model = _skewed_toy()
    x = _inputs((64, 8))
    spec = _spec()
    loss = lambda m: hw_loss.hardware_loss(m, x, spec)
    grad = nnx.grad(loss, argnums=nnx.DiffState(0, layers.Scores))(model)
    g = np.asarray(grad["fc1"]["scores"][...])
    assert np.abs(g).max() > 0
    # The slow PE's kept weights are pushed out hardest.
    pe0 = np.broadcast_to(np.arange(16) % 4 == 0, g.shape)  # kernel (in, out): PE by column
    hard = np.asarray(model.fc1.hard_mask()) > 0
    assert g[hard & pe0].mean() > np.abs(g[~pe0]).mean()

    def hard_cycles(m):
        keep = layers.to_hardware(m.fc1.hard_mask())
        act = jnp.mean((x != 0).astype(jnp.float32), axis=0)
        return float(eie.expected_cycles(keep, act, spec.eie, 0.0))

    before_soft, before_hard = float(loss(model)), hard_cycles(model)
    opt = nnx.Optimizer(model, optax.adam(0.2), wrt=layers.Scores)
    step = nnx.jit(
        lambda m, o: o.update(m, nnx.grad(loss, argnums=nnx.DiffState(0, layers.Scores))(m))
    )
    for _ in range(10):
        step(model, opt)
    assert float(loss(model)) < 0.8 * before_soft
    assert hard_cycles(model) < 0.8 * before_hard
    assert np.asarray(model.fc1.hard_mask()).sum() == 32  # same density, faster mask


def test_activation_gradient_only_with_act_temperature():
    model = _Toy((8, 12, 4), rngs=nnx.Rngs(2))
    for layer in (model.fc1, model.fc2):
        layer.enable_scores(keep_fraction=0.5)
    x = _inputs((32, 8), seed=4)
    grad_fn = nnx.jit(nnx.grad(hw_loss.hardware_loss), static_argnums=2)
    for act_t, nonzero in ((0.0, False), (0.5, True)):
        grad = grad_fn(model, x, _spec(act_temperature=act_t))
        g_bias = np.asarray(grad["fc1"]["bias"][...])
        assert bool(np.any(g_bias != 0)) == nonzero
        if nonzero:  # a larger bias means more nonzero inputs to fc2: more broadcasts
            assert np.all(g_bias >= 0) and g_bias.max() > 0


def test_activation_prob_forward_is_the_hard_fraction():
    h = jnp.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    pre = jnp.array([[-1.0, 1.0, 2.0], [-2.0, -0.5, 3.0]])
    for t in (0.0, 0.7):
        np.testing.assert_allclose(hw_loss.activation_prob(h, pre, t), [0.0, 0.5, 1.0])


def test_config_defaults_switch_the_term_off():
    config = lenet_300_100.get_config("smoke")
    assert hw_loss.HWLoss.from_config(config) is None  # the shipped default: weight 0, off
    del config["hw_loss"]
    assert "hw_loss" not in config and hw_loss.HWLoss.from_config(config) is None
    config.hw_loss = dict(weight=0.0)
    assert hw_loss.HWLoss.from_config(config) is None
    config.prune.score = "learned"
    config.hw_loss = dict(weight=0.5, num_pes=16, temperature=1.0)
    spec = hw_loss.HWLoss.from_config(config)
    assert spec.weight == 0.5 and spec.eie.num_pes == 16 and spec.eie.fifo_depth == 8
    # A static jit argument: equal settings hash equal (no recompile), others differ.
    assert hash(spec) == hash(hw_loss.HWLoss.from_config(config))
    config.hw_loss.temperature = 2.0
    assert spec != hw_loss.HWLoss.from_config(config)


@pytest.mark.parametrize(
    "fields, method, match",
    [
        (dict(weight=-1.0), "learned", "hw_loss.weight=-1.0"),
        (dict(weight=1.0), "magnitude", "hw_loss.weight=1.0"),
        (dict(weight=1.0, keep_temperature=0.0), "learned", "hw_loss.keep_temperature=0.0"),
        (dict(weight=1.0, num_pes=0), "learned", "config.hw_loss.*num_pes=0"),
        (dict(weight=1.0, pes=4), "learned", "hw_loss.pes: no such field"),
    ],
)
def test_bad_hw_loss_config_names_field(fields, method, match):
    config = lenet_300_100.get_config("smoke")
    config.prune.score = method
    config.hw_loss = fields
    with pytest.raises(ValueError, match=match):
        hw_loss.HWLoss.from_config(config)
