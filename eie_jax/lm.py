"""Character language models: training, evaluation in nats per character, gradual pruning,
and dense checkpoints (orbax), for the W4A16 study (experiments/lm_compress.py).

Training samples contiguous windows (text.train_batch) and runs AdamW through
`layers.Optimizer` (masks re-applied after every update, so pruned weights stay zero), its
rate set every step from a time budget. Pruning is Zhu & Gupta's
gradual cubic schedule (prune.gradual) with the magnitude rules of prune.prune_model,
as the 'gradual' schedule of eie_jax/prune does for image data.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from eie_jax import models, on_eie, prune, text
from eie_jax.errors import UserError
from eie_jax.layers import Optimizer, compressible_layers

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
def _train_step(model, optimizer, inputs, targets):
    loss, grads = nnx.value_and_grad(_loss)(model, inputs, targets)
    optimizer.update(model, grads)  # re-applies the masks (layers.Optimizer)
    return loss


@nnx.jit
def _sum_loss(model, inputs, targets):
    logits = model(inputs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).sum()


def evaluate(model, ids, context: int, max_windows: int | None, batch_size: int = 64) -> float:
    """Mean cross entropy in nats per character over the evaluation windows of `ids`."""
    inputs, targets = text.eval_windows(ids, context, max_windows)
    total = 0.0
    for s in range(0, len(inputs), batch_size):
        total += float(_sum_loss(model, inputs[s : s + batch_size], targets[s : s + batch_size]))
    return total / targets.size


def _optimizer(model, learning_rate, weight_decay):
    """AdamW over the Params, its learning rate a hyperparameter `train` sets every step."""
    tx = optax.inject_hyperparams(optax.adamw)(
        learning_rate=learning_rate, weight_decay=weight_decay
    )
    return Optimizer(model, tx)  # masks re-applied after every update


def learning_rate_at(base: float, progress: float, step: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 as progress goes 0 -> 1."""
    ramp = min(1.0, (step + 1) / max(warmup, 1))
    return base * ramp * 0.5 * (1.0 + np.cos(np.pi * min(progress, 1.0)))


def train(model, corpus, config, *, steps, learning_rate, stage, minutes=0.0, on_step=None, seed=0):
    """Up to `steps` AdamW steps on random training windows, within a time budget.

    The learning rate warms up over config.train.warmup steps and decays by a cosine over
    the progress max(step / steps, elapsed / (60 * minutes)) (minutes 0: no budget): on a
    loaded machine the run ends on time, its rate decayed to 0, after fewer steps.
    on_step(step) runs before every step (the pruning schedule uses it).
    Returns a dict of the steps run, the seconds and the last logged training loss.
    """
    optimizer = _optimizer(model, learning_rate, config.train.weight_decay)
    rng = np.random.default_rng(seed)
    context, batch = config.data.context, config.train.batch_size
    budget = 60.0 * minutes
    warmup = min(config.train.get("warmup", 0), steps // 10)
    start, losses, step, last = time.time(), [], 0, float("nan")
    log_every = max(1, config.train.get("log_every", 100))
    for step in range(steps):
        progress = step / steps
        if budget:
            progress = max(progress, (time.time() - start) / budget)
        if progress >= 1.0:
            logging.info("[%s] time budget spent after %d steps", stage, step)
            break
        if on_step is not None:
            on_step(step)
        lr = learning_rate_at(learning_rate, progress, step, warmup)
        optimizer.opt_state.hyperparams["learning_rate"][...] = jnp.float32(lr)
        inputs, targets = text.train_batch(corpus.train, batch, context, rng)
        losses.append(_train_step(model, optimizer, inputs, targets))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            last = float(np.mean(jax.device_get(losses)))
            losses = []
            logging.info(
                "[%s] step %d/%d  loss %.4f  lr %.2e  (%.0f s)", stage, step + 1, steps, last,
                lr, time.time() - start,
            )  # fmt: skip
    else:
        step = steps
    return dict(steps=step, seconds=time.time() - start, train_loss=last)


def prune_gradually(model, corpus, config, sparsity: float, *, seed=0) -> dict:
    """Every FC matrix pruned by magnitude to `sparsity` with the cubic schedule of Zhu &
    Gupta over the first 2/3 of config.prune.steps, then retrained to the end at
    config.prune.learning_rate (the 'gradual' schedule of eie_jax/prune, counted in steps).
    Returns {layer name: fraction kept} and the training record.
    """
    steps = config.prune.steps
    end = max(steps * 2 // 3, 1)
    schedule = prune.gradual(0.0, float(sparsity), 0, end, config.prune.frequency)
    rule = dict(structure="unstructured", sparsity=1.0)

    def on_step(step):
        if bool(schedule.is_pruning_step(step)):
            prune.prune_model(model, rule, scale=float(schedule.sparsity(step)))

    record = train(
        model, corpus, config, steps=steps, learning_rate=config.prune.learning_rate,
        minutes=config.prune.max_minutes, stage=f"prune {sparsity:.2f}", on_step=on_step,
        seed=seed,
    )  # fmt: skip
    kept = {name: float(jnp.mean(layer.mask[...])) for name, layer in compressible_layers(model)}
    return dict(kept=kept, **record)


def calibration_inputs(model, corpus, config) -> dict[str, np.ndarray]:
    """Every MaskedLinear's inputs (N, in) on config.quantize.calibration_windows training
    windows, from the model's own forward (`on_eie.record_inputs`)."""
    rng = np.random.default_rng(config.seed + 1)
    n = config.quantize.calibration_windows
    inputs, _ = text.train_batch(corpus.train, n, config.data.context, rng)
    return on_eie.record_inputs(model, jnp.asarray(inputs))


# ------------------------------------------------------------------ checkpoints


def save_dense(path: str, model, meta: dict) -> None:
    """The model's whole nnx.state (Params and Masks) with orbax, and meta as JSON."""
    path = os.path.abspath(path)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(path, "state"), nnx.state(model), force=True)
    checkpointer.wait_until_finished()
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)


def restore_dense(path: str, build):
    """(model, meta) from `save_dense`; `build()` makes the model's structure (never run:
    nnx.eval_shape gives the abstract state that orbax restores into)."""
    path = os.path.abspath(path)
    abstract = nnx.eval_shape(build)
    graphdef, abstract_state = nnx.split(abstract)
    state = ocp.StandardCheckpointer().restore(os.path.join(path, "state"), abstract_state)
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    return nnx.merge(graphdef, state), meta


def has_checkpoint(path: str) -> bool:
    return os.path.exists(os.path.join(path, "meta.json"))
