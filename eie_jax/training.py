"""Training a compressible model: the optimizer, the loss (cross entropy, distillation,
penalties, EIE's expected cycles), the jitted step that re-applies masks, and evaluation.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from eie_jax import data, hw_loss
from eie_jax.layers import Optimizer, compressible_layers


def _optimizer(model, learning_rate, config, total_steps):
    """The configured optimizer over the Params; cosine decay spans one stage's steps."""
    if config.train.lr_schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
    if config.train.optimizer == "adam":
        tx = optax.adamw(learning_rate, weight_decay=config.train.weight_decay)
    else:
        tx = optax.chain(
            optax.add_decayed_weights(config.train.weight_decay),
            optax.sgd(learning_rate, momentum=0.9),
        )
    return Optimizer(model, tx)  # masks re-applied after every update


def _loss(model, images, labels, teacher_logits, weights, hw=None):
    """Cross entropy, or its mix with distillation from the dense teacher, plus penalties.

    weights: dict(penalty=, distill=, temperature=) as traced scalars (no recompiles).
    Distillation (Hinton et al. 2015): (1 - d) * CE + d * T**2 * KL(teacher_T || student_T).
    """
    logits = model(images)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    t = weights["temperature"]
    targets = jax.nn.softmax(teacher_logits / t)
    kl = optax.kl_divergence(jax.nn.log_softmax(logits / t), targets).mean()
    d = weights["distill"]
    loss = (1.0 - d) * ce + d * t**2 * kl
    penalty = sum(layer.sparsity_penalty() for _, layer in compressible_layers(model))
    if hw is not None:  # EIE's expected cycles (hw_loss.py); None: nothing traced
        loss = loss + hw.weight * hw_loss.hardware_loss(model, images, hw)
    return loss + weights["penalty"] * penalty


@nnx.jit(static_argnames=("hw",))
def _train_step(model, optimizer, images, labels, teacher_logits, weights, hw=None):
    loss, grads = nnx.value_and_grad(_loss)(model, images, labels, teacher_logits, weights, hw)
    optimizer.update(model, grads)  # re-applies the masks (layers.Optimizer)
    return loss


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
):
    """Trains for `epochs`, logging loss and validation accuracy after each epoch.

    on_step(step) runs before every step (pruning schedules use it). hw: a hw_loss.HWLoss
    adds EIE's expected cycles to the loss (None: off). teacher: the dense model's logits
    on every training example (see `predict`); with config.distill.weight > 0 the loss
    mixes in distillation. The optimizer is made afresh for each stage; masks are
    re-applied after every update, so its momentum cannot revive a weight pruned in the
    middle of a stage.
    """
    steps_per_epoch = -(-len(dataset.train.images) // config.train.batch_size)
    optimizer = _optimizer(model, learning_rate, config, epochs * steps_per_epoch)
    distill = float(config.distill.weight) if teacher is not None else 0.0
    weights = dict(
        penalty=jnp.float32(penalty),
        distill=jnp.float32(distill),
        temperature=jnp.float32(config.distill.temperature),
    )
    train_x, train_y = dataset.train.images, dataset.train.labels
    if teacher is None:
        teacher = np.zeros((len(train_y), dataset.num_classes), np.float32)
    step = 0
    for epoch in range(epochs):
        start, losses = time.time(), []
        # Shuffled example indices, so that images, labels and teacher logits stay aligned.
        for idx, labels in data.batches(
            np.arange(len(train_y)), train_y, config.train.batch_size, seed=config.seed, epoch=epoch
        ):
            if on_step is not None:
                on_step(step)
            images, teacher_logits = train_x[idx], teacher[idx]
            losses.append(
                _train_step(model, optimizer, images, labels, teacher_logits, weights, hw)
            )
            step += 1
        val = accuracy(model, dataset.validation.images, dataset.validation.labels)
        logging.info(
            "[%s] epoch %d/%d  loss %.4f  val acc %.4f  (%.1f s)",
            stage,
            epoch + 1,
            epochs,
            float(np.mean(jax.device_get(losses))),
            val,
            time.time() - start,
        )
    return step
