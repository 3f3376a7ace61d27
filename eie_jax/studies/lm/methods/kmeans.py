"""Non-uniform codebooks: one per layer (Deep Compression, what EIE decodes) or one per row.

Per layer: `share.share_weights`, 1-D k-means over the layer's surviving weights with
2**b - 1 centroids and entry 0 the pruned zero (Deep Compression Sec. 3; EIE Sec. III-B),
written into the layer with `MaskedLayer.share`, so the centroids can be fine-tuned.

Per row (SqueezeLLM-like, Kim et al. 2023, without its sensitivity weights): every output
row of W (M, K) gets its own 2**b-entry codebook from 1-D k-means over the row's K
weights: centroids start evenly spaced over [min, max] of the row (Deep Compression's
linear init), then `iters` Lloyd iterations, each assigning every weight to its nearest
centroid (ties to the lower index) and moving every centroid with members to their mean.
EIE cannot run it: its PEs decode one codebook per layer.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression import share
from eie_jax.compression.layers import compressible_layers


def share_model(model, bits: int, init: str = "linear", seed: int = 0) -> None:
    """Every MaskedLinear of the model -> a per-layer 2**bits-entry k-means codebook."""
    for i, (_, layer) in enumerate(compressible_layers(model)):
        codebook, codes = share.share_weights(
            layer.kernel[...], layer.mask[...], bits, init=init, key=jax.random.key(seed + i)
        )
        layer.share(codebook, codes)


def assign(w, centroids):
    """Nearest centroid of every weight, ties to the lower index: (M, K) ints for
    w (M, K) and per-row centroids (M, C)."""
    return jnp.argmin(jnp.abs(w[:, :, None] - centroids[:, None, :]), axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("bits", "iters"))
def row_kmeans(w, bits: int, iters: int = 25):
    """(w_hat, codes, centroids): per-row k-means of W (M, K) into 2**bits entries."""
    w = jnp.asarray(w, jnp.float32)
    k = 1 << bits
    lo, hi = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    start = lo + (hi - lo) * jnp.linspace(0.0, 1.0, k)[None, :]

    def lloyd(_, centroids):
        members = jax.nn.one_hot(assign(w, centroids), k, dtype=jnp.float32)  # (M, K, C)
        sums = jnp.einsum("mk,mkc->mc", w, members)
        counts = members.sum(axis=1)
        return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), centroids)

    centroids = jax.lax.fori_loop(0, iters, lloyd, start)
    codes = assign(w, centroids)
    return jnp.take_along_axis(centroids, codes, axis=1), codes, centroids


def row_kmeans_np(w, bits: int, iters: int = 25):
    """Host wrapper of `row_kmeans`: NumPy in, NumPy out."""
    w_hat, codes, centroids = row_kmeans(jnp.asarray(w), bits, iters)
    return np.asarray(w_hat), np.asarray(codes), np.asarray(centroids)
