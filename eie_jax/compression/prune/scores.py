"""Scores: what ranks a layer's weights for pruning (the `score` of a pruning method).

A static score is a function (layer, key) -> a kernel-shaped array whose magnitude ranks the
weights (structures keep the largest |score|). `key` is a jax PRNG key derived from the
config's `seed` and the layer's position, so random scores are reproducible.

`learned` is different in kind: trainable scores pick each layer's top (1 - sparsity)
weights through a straight-through estimator while the network trains (layers.py), with an
optional density penalty; `train_learned` runs that stage.

To add a score: one function here, decorated with `@register("score", NAME)`.
"""

from __future__ import annotations

import jax

from eie_jax.compression.layers import compressible_layers
from eie_jax.compression.prune.registry import non_negative, register


@register("score", "magnitude")
def magnitude(layer, key):
    """The weight itself: structures keep the largest |w| (Han et al. 2015)."""
    del key
    return layer.kernel[...]


@register("score", "random")
def random(layer, key):
    """A random ranking (the baseline every pruning paper should beat); drawn from `seed`."""
    return jax.random.uniform(key, layer.kernel_shape)


@register("score", "learned", settings={"penalty": non_negative(0.0)}, learned=True)
def learned(layer, key):
    """Trainable scores (see `train_learned`); they have no static ranking."""
    raise ValueError("the 'learned' score is trained, not computed: use train_learned")


def train_learned(model, keep_fraction: dict, train, *, epochs: int, penalty: float) -> None:
    """Learned masks: each layer keeps its top keep_fraction[name] scores, trained for
    `epochs` through a straight-through estimator (`train(epochs, stage, penalty=...)`),
    then frozen into the masks."""
    for name, layer in compressible_layers(model):
        layer.enable_scores(keep_fraction=keep_fraction[name])
    train(epochs, "prune/scores", penalty=penalty)
    for _, layer in compressible_layers(model):
        layer.freeze_scores()
