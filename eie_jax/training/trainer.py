"""The one training loop: steps counted, a learning-rate schedule, a time budget, hooks.

    optimizer = trainer.make_optimizer(model, optax.cosine_decay_schedule(1e-3, steps))
    record = trainer.fit(model, optimizer, loss, batches, steps=steps, stage="retrain")

`loss(model, *batch) -> scalar` is differentiated with respect to the Params; `batches` is
an iterator of argument tuples, one drawn per step. The optimizer (`make_optimizer`, the
only place the project builds one) re-applies the masks after every update
(`layers.Optimizer`), so momentum and weight decay cannot revive a pruned weight.

The learning rate is a number, an optax schedule of the step count (evaluated by optax
inside the update; `cosine` is one that compares by value), or a `Progress`: a function of
the progress p = step / steps that `fit` sets before every step. Steps are counted, so a
rerun repeats the result; a time budget is only a cap: a run that reaches it stops there
and says so in its record (`budget_stop`, with the steps it ran).

The jitted step is compiled once per model structure, loss, batch shapes and optimizer
transformation; `make_optimizer` hands out one transformation per (kind, rate, weight
decay), so the stages of a run, and the runs of a study, that train alike share one
compiled step instead of compiling their own.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from eie_jax.compression.layers import Optimizer
from eie_jax.training import checkpoint
from eie_jax.utils.cli import UserError

OPTIMIZERS = ("adam", "sgd")


class Progress(NamedTuple):
    """A learning rate fn(progress, step) that `fit` sets before every step; progress in
    [0, 1) is step / steps."""

    fn: Callable[[float, int], float]


def warmup_cosine(base: float, warmup: int = 0) -> Progress:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 as progress goes 0 -> 1."""

    def fn(progress, step):
        ramp = min(1.0, (step + 1) / max(warmup, 1))
        return base * ramp * 0.5 * (1.0 + np.cos(np.pi * min(progress, 1.0)))

    return Progress(fn)


@dataclasses.dataclass(frozen=True)
class cosine:  # noqa: N801 (an optax schedule: called like optax's functions)
    """optax.cosine_decay_schedule(base, steps) that compares by value (see the module
    docstring: equal schedules share a compiled step)."""

    base: float
    steps: int

    def __call__(self, count):
        return optax.cosine_decay_schedule(self.base, max(self.steps, 1))(count)


def _sgd(learning_rate, weight_decay):
    return optax.chain(
        optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=0.9)
    )


# Called with keywords. Injected, adamw's own signature makes its betas and epsilon
# hyperparameters too (f32 state, as the LM study has always run it).
_TX = {"adam": optax.adamw, "sgd": _sgd}


def make_optimizer(model, learning_rate, *, kind: str = "adam", weight_decay: float = 0.0):
    """AdamW, or SGD with momentum 0.9 and weight decay added to the gradient, over the
    model's Params; masks re-applied after every update.

    learning_rate: a number, an optax schedule of the step count, or a `Progress` (then an
    injected hyperparameter that `fit` sets every step).
    """
    if kind not in _TX:
        raise ValueError(f"optimizer kind={kind!r}: allowed: {OPTIMIZERS}")
    rate = Progress if isinstance(learning_rate, Progress) else learning_rate
    return Optimizer(model, _transformation(kind, rate, float(weight_decay)))


@functools.lru_cache(maxsize=256)
def _transformation(kind: str, learning_rate, weight_decay: float):
    """One optax transformation per (kind, rate, weight decay): the same object for equal
    arguments, so that the jitted step's cache finds it (nnx compares it by identity)."""
    if learning_rate is Progress:  # a hyperparameter in the state, set by fit
        return optax.inject_hyperparams(_TX[kind])(learning_rate=0.0, weight_decay=weight_decay)
    return _TX[kind](learning_rate=learning_rate, weight_decay=weight_decay)


@nnx.jit(static_argnums=(2,))
def _step(model, optimizer, loss, *batch):
    value, grads = nnx.value_and_grad(loss)(model, *batch)
    optimizer.update(model, grads)  # re-applies the masks (layers.Optimizer)
    return value


def log_line(stage: str, steps: int):
    """fit's default on_every: one log line of the step, the loss, the rate, the seconds."""

    def log(step, loss, lr, seconds):
        rate = "" if lr is None else f"  lr {lr:.2e}"
        logging.info(
            "[%s] step %d/%d  loss %.4f%s  (%.0f s)", stage, step, steps, loss, rate, seconds
        )

    return log


def fit(
    model,
    optimizer,
    loss,
    batches: Iterator[tuple],
    *,
    steps: int,
    learning_rate: Progress | None = None,
    minutes: float = 0.0,
    stage: str = "train",
    on_step: Callable[[int], None] | None = None,
    every: int = 100,
    on_every: Callable[[int, float, float | None, float], None] | None = None,
    first_step: int = 0,
    seconds_before: float = 0.0,
) -> dict:
    """Up to `steps` optimizer steps of `loss` on `batches`, within `minutes` (0: no budget).

    loss: loss(model, *batch) -> scalar, hashable and the same object from call to call (a
      module-level function or a frozen dataclass: it is a static argument of the jitted
      step, compiled once per loss and batch shapes).
    learning_rate: the `Progress` the optimizer was made with, or None when its rate is a
      number or an optax schedule.
    on_step(step): runs before every step (pruning schedules use it).
    on_every(step, mean loss, learning rate or None, seconds): after every `every` steps
      and after the last; default: one log line.
    first_step, seconds_before: a resumed run's steps and seconds already spent (the
      optimizer restored); the steps, the rate and the budget continue from them.
    Returns dict(steps=steps run in all, seconds=in all, train_loss=the last mean loss
    reported, budget_stop=whether the time budget stopped it before `steps`).
    """
    on_every = on_every or log_line(stage, steps)
    budget = 60.0 * minutes
    start = time.time() - seconds_before
    losses, last, lr, step, stopped = [], float("nan"), None, first_step, False
    for step in range(first_step, steps):
        progress = step / steps
        if budget and time.time() - start >= budget:
            logging.info("[%s] time budget spent after %d of %d steps", stage, step, steps)
            stopped = True
            break
        if on_step is not None:
            on_step(step)
        if learning_rate is not None:
            lr = learning_rate.fn(progress, step)
            optimizer.opt_state.hyperparams["learning_rate"][...] = jnp.float32(lr)
        losses.append(_step(model, optimizer, loss, *next(batches)))
        if (step + 1) % every == 0 or step + 1 == steps:
            last = float(np.mean(jax.device_get(losses)))
            losses = []
            on_every(step + 1, last, lr, time.time() - start)
    else:
        step = steps
    return dict(steps=step, seconds=time.time() - start, train_loss=last, budget_stop=stopped)


class InStage:
    """Checkpoints inside a stage and the resume from them, for every training call the
    stage makes (a schedule's rounds, say).

    After a unit of training (an epoch of the image pipeline, a logging interval of the
    LM study's steps), when `minutes` have passed since the last save (0: every time), the
    model, the optimizer and the position (which training call of the stage, units done,
    seconds spent, and `extra`: the state of a batch generator, say) go to PATH
    (`checkpoint.save`, atomic). A rerun's stage runs from its start again, with the calls
    before the saved one skipped (their effect, and that of any pruning between them, is
    in the saved model), the saved call restored and continued after its last saved unit,
    and the rest as usual: the same result as a run never interrupted, as long as what
    the batches and schedules depend on is restored too (the step, `extra`).
    """

    def __init__(self, path: str, minutes: float):
        self.path, self.minutes = path, float(minutes)
        self.started = self.last_save = time.time()
        self.calls, self.resume, self.seconds_before, self.extra = 0, None, 0.0, {}
        if os.path.isdir(path):
            meta = checkpoint.read_meta(path)
            try:
                self.resume = (int(meta["call"]), int(meta["epochs"]))
                self.seconds_before = float(meta["seconds"])
                self.extra = dict(meta.get("extra", {}))
            except (KeyError, TypeError, ValueError):
                raise UserError(
                    f"checkpoint {path} is damaged; delete it to recompute that stage"
                ) from None

    def begin(self) -> int:
        """The index of the training call that starts now."""
        self.calls += 1
        return self.calls - 1

    def skips(self, call: int) -> bool:
        return self.resume is not None and call < self.resume[0]

    def restore(self, call: int, model, optimizer) -> int:
        """Units already done by this call (0 unless it is the one to resume); the saved
        `extra` is in self.extra."""
        if self.resume is None or call != self.resume[0]:
            return 0
        checkpoint.restore(self.path, model, optimizer=optimizer)
        epochs, self.resume = self.resume[1], None
        logging.info("resumed inside the stage from %s after unit %d", self.path, epochs)
        return epochs

    def after_epoch(self, call: int, epochs_done: int, model, optimizer, extra=None) -> None:
        """Saves the position after `epochs_done` units of call `call` when it is due."""
        if time.time() - self.last_save < 60.0 * self.minutes:
            return
        seconds = self.seconds_before + time.time() - self.started
        meta = dict(call=call, epochs=epochs_done, seconds=seconds)
        if extra:
            meta["extra"] = extra
        checkpoint.save(self.path, model, meta, optimizer=optimizer)
        self.last_save = time.time()

    def done(self) -> None:
        """The stage finished (and its own checkpoint is written): the partial one goes."""
        shutil.rmtree(self.path, ignore_errors=True)
