"""Schedules: when masks are recomputed while the network retrains.

Two layers of the same idea:

- `gradual` returns a `Schedule` that answers the two questions of a
  training loop, with an int step, under jit: `schedule.is_pruning_step(step)` and
  `schedule.sparsity(step)`;
- the registered drivers (`@register("schedule", ...)`) run a whole prune-and-retrain stage
  through a `Context` (how to prune the model to a fraction of its targets, how to train
  it), so the pipeline calls whichever the config names.

To add a schedule: one driver function here, decorated with `@register("schedule", NAME,
settings=...)`.
"""

from __future__ import annotations

import fractions
import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from absl import logging

from eie_jax.compression.prune.registry import positive_int, register
from eie_jax.compression.prune.structures import _check_int, _check_range
from eie_jax.utils import schema


class Schedule(NamedTuple):
    """Two jit-compatible functions of an int step.

    sparsity(step): the target the mask should have after the latest pruning step (0.0
      before the first); for the std rule read it as the quality parameter.
    is_pruning_step(step): whether masks are recomputed at this step.
    """

    sparsity: Callable
    is_pruning_step: Callable


def cubic_sparsity(step, initial_sparsity, final_sparsity, begin_step, end_step):
    """Zhu & Gupta 2017, Eq. 1: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3.

    t is clipped to [t0, t0 + n dt] = [begin_step, end_step].
    """
    t = jnp.clip(jnp.asarray(step), begin_step, end_step)
    progress = (t - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def gradual(
    initial_sparsity: float,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int,
) -> Schedule:
    """Gradual pruning (Zhu & Gupta 2017, Sec. 3): every `frequency` steps from begin_step,
    and at end_step, the mask is recomputed at the cubic sparsity `cubic_sparsity`; the
    sparsity holds between pruning steps and is final_sparsity from end_step on.
    """
    _check_range("initial_sparsity", initial_sparsity, 0.0, 1.0, hi_inclusive=True)
    _check_range("final_sparsity", final_sparsity, 0.0, 1.0, hi_inclusive=True)
    _check_int("begin_step", begin_step, 0)
    _check_int("frequency", frequency, 1)
    if not isinstance(end_step, numbers.Integral) or end_step <= begin_step:
        raise ValueError(f"end_step: {end_step!r}; allowed: an integer > begin_step = {begin_step}")

    def sparsity(step):
        step = jnp.asarray(step)
        last = begin_step + (jnp.maximum(step - begin_step, 0) // frequency) * frequency
        last = jnp.where(step >= end_step, end_step, last)
        s = cubic_sparsity(last, initial_sparsity, final_sparsity, begin_step, end_step)
        return jnp.where(step >= begin_step, s, 0.0).astype(jnp.float32)

    def is_pruning_step(step):
        step = jnp.asarray(step)
        on_grid = (step - begin_step) % frequency == 0
        return (step >= begin_step) & (step <= end_step) & (on_grid | (step == end_step))

    return Schedule(sparsity, is_pruning_step)


# -- drivers: a whole prune-and-retrain stage ----------------------------------------------


class Context(NamedTuple):
    """What a schedule driver needs from the pipeline.

    prune(scale): recompute every layer's mask at `scale` of its target (1.0: the target);
      returns {layer: fraction kept}.
    train(epochs, stage, on_step): retrain for `epochs`; on_step(step) runs before each step.
    epochs: the retraining epochs of the whole stage; steps_per_epoch: optimizer steps each.
    """

    prune: Callable[[float], dict]
    train: Callable[..., None]
    epochs: int
    steps_per_epoch: int


@register("schedule", "one_shot")
def one_shot_driver(ctx: Context):
    """Prune once to the targets, then retrain for all epochs (Han 2015; NVIDIA 2:4)."""
    iterative_driver(ctx, rounds=1)


@register("schedule", "iterative", settings={"rounds": positive_int(4)})
def iterative_driver(ctx: Context, *, rounds: int):
    """Rounds r = 1..R prune each layer to r/R of its target, then retrain epochs / R epochs
    (Han et al. NIPS 2015, Sec. 3.3)."""
    for r in range(1, rounds + 1):
        kept = ctx.prune(r / rounds)
        logging.info("[prune] round %d/%d kept %s", r, rounds, _fmt(kept))
        ctx.train(ctx.epochs // rounds, f"prune/round {r}")


@register(
    "schedule",
    "gradual",
    settings={
        # The cubic ramp ends at this fraction of the retraining steps; the rest fine-tunes.
        "end_fraction": schema.number(2 / 3, 0, 1, above=True),
        "prunes_per_epoch": positive_int(2),
    },
)
def gradual_driver(ctx: Context, *, end_fraction: float, prunes_per_epoch: int):
    """Zhu & Gupta's cubic schedule over the retraining steps, masks recomputed
    `prunes_per_epoch` times an epoch until `end_fraction` of the steps, then held."""
    total = ctx.epochs * ctx.steps_per_epoch
    ratio = fractions.Fraction(end_fraction).limit_denominator(1000)
    end = max(total * ratio.numerator // ratio.denominator, 1)
    schedule = gradual(0.0, 1.0, 0, end, max(ctx.steps_per_epoch // prunes_per_epoch, 1))

    def on_step(step):
        if bool(schedule.is_pruning_step(step)):
            ctx.prune(float(schedule.sparsity(step)))

    ctx.train(ctx.epochs, "prune/gradual", on_step)


def _fmt(d):
    return ", ".join(f"{k} {v:.3f}" for k, v in d.items())
