"""Training an image classifier through `trainer.fit`: the loss (cross entropy,
distillation, penalties, EIE's expected cycles), epochs of shuffled batches, and evaluation.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from eie_jax.compression.layers import compressible_layers
from eie_jax.data import idx as data
from eie_jax.training import hw_loss, trainer


@dataclasses.dataclass(frozen=True)
class _Loss:
    """Cross entropy, or its mix with distillation from the dense teacher, plus penalties.

    weights: dict(penalty=, distill=, temperature=) as traced scalars (no recompiles).
    Distillation (Hinton et al. 2015): (1 - d) * CE + d * T**2 * KL(teacher_T || student_T).
    hw: a hw_loss.HWLoss adds EIE's expected cycles (None: nothing traced). Frozen, so
    equal losses share one compiled step (trainer.fit).
    """

    hw: hw_loss.HWLoss | None = None

    def __call__(self, model, images, labels, teacher_logits, weights):
        logits = model(images)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        t = weights["temperature"]
        targets = jax.nn.softmax(teacher_logits / t)
        kl = optax.kl_divergence(jax.nn.log_softmax(logits / t), targets).mean()
        d = weights["distill"]
        loss = (1.0 - d) * ce + d * t**2 * kl
        penalty = sum(layer.sparsity_penalty() for _, layer in compressible_layers(model))
        if self.hw is not None:
            loss = loss + self.hw.weight * hw_loss.hardware_loss(model, images, self.hw)
        return loss + weights["penalty"] * penalty


@nnx.jit
def _logits(model, images):
    return model(images)


def predict(model, images, batch_size: int = 2000) -> np.ndarray:
    """The model's logits on every image, as one NumPy array."""
    return np.concatenate(
        [
            np.asarray(_logits(model, jnp.asarray(images[s : s + batch_size])))
            for s in range(0, len(images), batch_size)
        ]
    )


def accuracy(model, images, labels, batch_size: int = 2000) -> float:
    if len(images) == 0:
        return 0.0
    return float(np.mean(np.argmax(predict(model, images, batch_size), -1) == labels))


def train(
    model,
    dataset,
    config,
    *,
    epochs,
    learning_rate,
    stage,
    on_step=None,
    penalty=0.0,
    teacher=None,
    hw=None,
    progress: trainer.InStage | None = None,
):
    """Trains for `epochs`, logging loss and validation accuracy after each epoch.

    on_step(step) runs before every step (pruning schedules use it). hw: a hw_loss.HWLoss
    adds EIE's expected cycles to the loss (None: off). teacher: the dense model's logits
    on every training example (see `predict`); with config.distill.weight > 0 the loss
    mixes in distillation. The optimizer is made afresh for each stage; masks are
    re-applied after every update, so its momentum cannot revive a weight pruned in the
    middle of a stage. progress: the stage's `InStage` (checkpoints after epochs, and the
    resume from one).
    """
    steps_per_epoch = -(-len(dataset.train.images) // config.train.batch_size)
    steps = epochs * steps_per_epoch
    call = progress.begin() if progress is not None else 0
    if progress is not None and progress.skips(call):
        logging.info("[%s] finished before the interruption (restored below)", stage)
        return steps
    if config.train.lr_schedule == "cosine":
        learning_rate = trainer.cosine(learning_rate, steps)
    optimizer = trainer.make_optimizer(
        model, learning_rate, kind=config.train.optimizer, weight_decay=config.train.weight_decay
    )
    first = progress.restore(call, model, optimizer) if progress is not None else 0
    distill = float(config.distill.weight) if teacher is not None else 0.0
    weights = dict(
        penalty=jnp.float32(penalty),
        distill=jnp.float32(distill),
        temperature=jnp.float32(config.distill.temperature),
    )
    train_x, train_y = dataset.train.images, dataset.train.labels
    if teacher is None:
        teacher = np.zeros((len(train_y), dataset.num_classes), np.float32)

    def batches():
        # Shuffled example indices: images, labels and teacher logits stay aligned.
        index, size = np.arange(len(train_y)), config.train.batch_size
        for epoch in range(first, epochs):
            for idx, labels in data.batches(index, train_y, size, seed=config.seed, epoch=epoch):
                yield train_x[idx], labels, teacher[idx], weights

    epoch_start = [time.time()]

    def log_epoch(step, loss, lr, seconds):
        epoch = first + step // steps_per_epoch
        val = accuracy(model, dataset.validation.images, dataset.validation.labels)
        logging.info(
            "[%s] epoch %d/%d  loss %.4f  val acc %.4f  (%.1f s)", stage,
            epoch, epochs, loss, val, time.time() - epoch_start[0],
        )  # fmt: skip
        if progress is not None:
            progress.after_epoch(call, epoch, model, optimizer)
        epoch_start[0] = time.time()

    offset = first * steps_per_epoch  # the steps before the resume, for the schedules
    trainer.fit(
        model, optimizer, _Loss(hw), batches(), steps=steps - offset, stage=stage,
        on_step=None if on_step is None else (lambda step: on_step(step + offset)),
        every=steps_per_epoch, on_every=log_epoch,
    )  # fmt: skip
    return steps
