"""Distributions: each layer's target sparsity (the `distribution` of a pruning method).

A distribution is a function (targets, sizes, **settings) -> targets, where targets maps a
layer name to the sparsity its config asks for (`sparsity`, or `layers.<name>.sparsity`) and
sizes maps it to its number of weights.

To add a distribution: one function here, decorated with `@register("distribution", NAME,
settings=...)`.
"""

from __future__ import annotations

import numpy as np

from eie_jax.compression.prune.registry import register
from eie_jax.utils import schema


@register("distribution", "per_layer")
def per_layer(targets: dict, sizes: dict) -> dict:
    """Each layer's own target, as configured."""
    del sizes
    return dict(targets)


@register(
    "distribution",
    "global",
    settings={"target_density": schema.number(0.1, 0, 1, above=True)},
)
def global_density(targets: dict, sizes: dict, *, target_density: float) -> dict:
    """One overall density with the configured per-layer ratios.

    Each layer keeps (1 - sparsity) of its weights; one factor c (found by bisection, each
    kept fraction capped at 1) scales them so that the model as a whole keeps
    target_density of its weights: Deep Compression's per-layer ratios at a chosen density.
    """
    names = list(targets)
    size = np.array([sizes[n] for n in names], float)
    keep = np.array([1.0 - targets[n] for n in names])
    lo, hi = 0.0, 1.0 / max(keep.min(), 1e-12)
    for _ in range(100):
        c = (lo + hi) / 2
        if np.sum(np.minimum(keep * c, 1.0) * size) / size.sum() < target_density:
            lo = c
        else:
            hi = c
    scaled = np.minimum(keep * hi, 1.0)
    return {name: float(1.0 - k) for name, k in zip(names, scaled, strict=True)}
