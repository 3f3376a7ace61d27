"""Character language models: training, evaluation in nats per character, gradual pruning,
and dense checkpoints, for the W4A16 study (experiments/lm_compress.py).

Training samples contiguous windows (text.train_batch) and runs AdamW through the one
trainer (`trainer.fit`: masks re-applied after every update, so pruned weights stay zero),
its rate set every step from the progress against a step count and a time budget. Pruning
is the registry's 'gradual' schedule (Zhu & Gupta's cubic ramp, `prune.schedules`) with
the magnitude rule of prune.prune_model, counted in steps; checkpoints are `checkpoint.py`'s.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from eie_jax import models
from eie_jax.api import on_eie
from eie_jax.compression import prune
from eie_jax.compression.layers import compressible_layers
from eie_jax.data import text
from eie_jax.training import checkpoint, trainer
from eie_jax.utils.cli import UserError

LM_MODELS = ("char_transformer", "char_lstm")


def build_model(config, vocab_size: int, seed: int | None = None):
    """config.model with config.model_kwargs and the text's vocabulary size."""
    if config.model not in LM_MODELS:
        raise UserError(f"config.model={config.model!r}: allowed: {LM_MODELS}")
    seed = config.seed if seed is None else seed
    kwargs = dict(config.model_kwargs)
    return models.get_model(config.model, rngs=nnx.Rngs(seed), vocab_size=vocab_size, **kwargs)


def copy(model):
    """An independent copy (own Variables), so that a method never changes the dense model."""
    return nnx.clone(model)


def _loss(model, inputs, targets):
    logits = model(inputs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


@nnx.jit
def _window_sums(model, inputs, targets):
    logits = model(inputs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).sum(axis=-1)


def window_losses(model, ids, context: int, max_windows: int | None, batch_size: int = 64):
    """(n,) float64: the mean cross entropy in nats/char of each evaluation window of `ids`
    (`text.eval_windows`: up to max_windows non-overlapping windows, in their order)."""
    inputs, targets = text.eval_windows(ids, context, max_windows)
    sums = [
        np.asarray(_window_sums(model, inputs[s : s + batch_size], targets[s : s + batch_size]))
        for s in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(sums).astype(np.float64) / targets.shape[1]


def evaluate(model, ids, context: int, max_windows: int | None, batch_size: int = 64) -> float:
    """Mean cross entropy in nats per character over the evaluation windows of `ids`: the
    mean of their `window_losses` (all windows have `context` characters)."""
    return float(np.mean(window_losses(model, ids, context, max_windows, batch_size)))


def train(
    model, corpus, config, *, steps, learning_rate, stage, minutes=0.0, on_step=None, seed=0,
    progress: trainer.InStage | None = None, curve_every: int = 0,
):  # fmt: skip
    """Up to `steps` AdamW steps on random training windows, within a time budget
    (`trainer.fit`).

    The learning rate warms up over config.train.warmup steps and decays by a cosine over
    the progress step / steps; `minutes` (0: none) is only a cap: a run that reaches it
    stops there, and its record says so (budget_stop) with the steps it ran.
    on_step(step) runs before every step (the pruning schedule uses it).
    progress: the stage's `trainer.InStage` (the stage's only training call): after every
    config.train.log_every steps, when due, the model, the optimizer, the step, the seconds
    and the batch generator's state are saved; a rerun continues from there, and a
    step-counted run (minutes 0) ends with the same model as one never interrupted.
    curve_every: after every this many steps (a multiple of config.train.log_every; 0:
    never) and after the last, the validation and test nats/char on config.data.eval_windows
    windows go to the record's `curve` (step, training characters, validation, test).
    Returns a dict of the steps run (in all, when resumed), the seconds, the last logged
    training loss and the curve when asked for.
    """
    warmup = min(config.train.get("warmup", 0), steps // 10)
    rate = trainer.warmup_cosine(learning_rate, warmup)
    optimizer = trainer.make_optimizer(model, rate, weight_decay=config.train.weight_decay)
    rng = np.random.default_rng(seed)
    first, seconds_before, call, curve = 0, 0.0, 0, []
    if progress is not None:
        call = progress.begin()
        first = progress.restore(call, model, optimizer)
        if first:
            rng.bit_generator.state = progress.extra["rng"]
            curve = list(progress.extra.get("curve", []))
            seconds_before = progress.seconds_before
    context, batch = config.data.context, config.train.batch_size
    batches = (text.train_batch(corpus.train, batch, context, rng) for _ in range(first, steps))
    log = trainer.log_line(stage, steps)

    def add_point(step):
        windows = config.data.eval_windows
        point = dict(
            step=step,
            chars=step * batch * context,
            validation=evaluate(model, corpus.validation, context, windows),
            test=evaluate(model, corpus.test, context, windows),
        )
        curve.append(point)
        logging.info(
            "[%s] step %d: validation %.4f, test %.4f nats/char",
            stage, step, point["validation"], point["test"],
        )  # fmt: skip

    def on_every(step, loss, lr, seconds):
        log(step, loss, lr, seconds)
        if curve_every and (step % curve_every == 0 or step == steps):
            add_point(step)
        if progress is not None:
            state = dict(rng=rng.bit_generator.state, curve=curve)
            progress.after_epoch(call, step, model, optimizer, extra=state)

    record = trainer.fit(
        model, optimizer, _loss, batches, steps=steps, learning_rate=rate, minutes=minutes,
        stage=stage, on_step=on_step, every=max(1, config.train.get("log_every", 100)),
        on_every=on_every, first_step=first, seconds_before=seconds_before,
    )  # fmt: skip
    if curve_every:
        if record["budget_stop"] and (not curve or curve[-1]["step"] != record["steps"]):
            add_point(record["steps"])  # a time cap stopped it between two points
        record["curve"] = curve
    return record


def prune_gradually(model, corpus, config, sparsity: float, *, seed=0) -> dict:
    """Every FC matrix pruned by magnitude to `sparsity` while it retrains for
    config.prune.steps at config.prune.learning_rate: the registry's 'gradual' schedule
    (Zhu & Gupta's cubic ramp over the first 2/3 of the steps, masks recomputed every
    steps // (steps // config.prune.frequency) steps: config.prune.frequency when it
    divides config.prune.steps, then held). Returns {layer name: fraction kept} and the
    training record.
    """
    steps = config.prune.steps
    rule = dict(structure="unstructured", sparsity=float(sparsity))
    record = {}

    def retrain(epochs, stage, on_step=None):
        record.update(
            train(
                model, corpus, config, steps=epochs * steps,
                learning_rate=config.prune.learning_rate, minutes=config.prune.max_minutes,
                stage=f"prune {sparsity:.2f}", on_step=on_step, seed=seed,
            )
        )  # fmt: skip

    ctx = prune.Context(
        prune=lambda scale: prune.prune_model(model, rule, scale=scale),
        train=retrain,
        epochs=1,
        steps_per_epoch=steps,
    )
    prunes = max(steps // config.prune.frequency, 1)
    prune.get("schedule", "gradual").fn(ctx, end_fraction=2 / 3, prunes_per_epoch=prunes)
    kept = {name: float(jnp.mean(layer.mask[...])) for name, layer in compressible_layers(model)}
    return dict(kept=kept, **record)


DRAW_SEED_STRIDE = 1000  # calibration draw k takes the seed config.seed + 1 + 1000 k


def calibration_windows(corpus, config, draw: int = 0):
    """(inputs, targets), (N, context) each: config.quantize.calibration_windows random
    training windows of calibration draw `draw` (0: the study's first set; each draw its
    own seed, config.seed + 1 + DRAW_SEED_STRIDE * draw)."""
    rng = np.random.default_rng(config.seed + 1 + DRAW_SEED_STRIDE * draw)
    n = config.quantize.calibration_windows
    return text.train_batch(corpus.train, n, config.data.context, rng)


def calibration_inputs(model, corpus, config, draw: int = 0) -> dict[str, np.ndarray]:
    """Every MaskedLinear's inputs (N, in) on the `calibration_windows` of draw `draw`,
    from the model's own forward (`on_eie.record_inputs`)."""
    inputs, _ = calibration_windows(corpus, config, draw)
    return on_eie.record_inputs(model, jnp.asarray(inputs))


# ------------------------------------------------------------------ checkpoints


def save_dense(path: str, model, meta: dict) -> None:
    """The model's whole nnx.state and meta, written atomically (`checkpoint.save`)."""
    checkpoint.save(path, model, meta)


def restore_dense(path: str, build):
    """(model, meta) from `save_dense`; `build()` makes the model's structure."""
    model = build()
    meta = checkpoint.restore(path, model)
    return model, meta


def has_checkpoint(path: str) -> bool:
    return os.path.isdir(path)
