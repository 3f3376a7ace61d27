"""Weight sharing: per-layer 1-D k-means codebooks, and a linear integer grid to compare.

Deep Compression (Han, Mao, Dally, ICLR 2016) Sec. 3: the surviving weights of a layer
are clustered by 1-D k-means, minimising
    sum_i sum_{w in c_i} |w - c_i|**2,
and every weight is replaced by the index of its centroid. With EIE's 4-bit indices the
layer has a 16-entry table whose entry 0 is the zero (pruned) weight (EIE, ISCA 2016,
Sec. III-B), so the survivors share 2**bits - 1 centroids. Centroid initialisation
(Sec. 3.1, Fig. 4): linear (evenly spaced over [min, max], the default and the best in the
paper), density-based (evenly spaced in the CDF), random (Forgy); we add k-means++
(Arthur & Vassilvitskii 2007).

`linear_quantize` / `linear_codebook` give the uniform symmetric integer grid (W4A16 as in
GPTQ/AWQ) that the k-means codebook is compared against.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

INITS = ("linear", "density", "random", "kmeans++")


class KMeansResult(NamedTuple):
    """centroids (k,) float32; assignments (n,) int32 (meaningless where the mask is 0);
    num_iters: Lloyd iterations run."""

    centroids: jax.Array
    assignments: jax.Array
    num_iters: jax.Array


@functools.partial(jax.jit, static_argnames=("num_clusters", "init"))
def init_centroids(values, weights_mask, num_clusters: int, init: str = "linear", key=None):
    """Initial centroids (k,) over the survivors (mask != 0) of a flat `values` array.

    - linear:   c_i = min + i * (max - min) / (k - 1)   (Deep Compression Sec. 3.1);
    - density:  c_i = quantile(survivors, i / (k - 1)), linear interpolation between
                order statistics (np.quantile's default), i.e. evenly spaced in the CDF;
    - random:   k distinct survivors drawn uniformly (Forgy), via Gumbel top-k;
    - kmeans++: first centroid a uniform survivor, each next one a survivor drawn with
                probability proportional to its squared distance to the nearest chosen
                centroid.
    jit-compatible with num_clusters and init static; needs at least one survivor
    (random and kmeans++ need num_clusters distinct survivors to give distinct centroids).
    """
    _check_static(num_clusters, init)
    values = jnp.asarray(values, jnp.float32).reshape(-1)
    alive = jnp.asarray(weights_mask).reshape(-1) != 0
    k = num_clusters
    if key is None:
        key = jax.random.key(0)
    if init == "linear":
        lo = jnp.min(jnp.where(alive, values, jnp.inf))
        hi = jnp.max(jnp.where(alive, values, -jnp.inf))
        return jnp.linspace(lo, hi, k, dtype=jnp.float32)
    if init == "density":
        # Survivors first, sorted; pruned entries pushed to the end as +inf.
        ordered = jnp.sort(jnp.where(alive, values, jnp.inf))
        last = jnp.sum(alive) - 1
        pos = jnp.linspace(0.0, 1.0, k) * last
        below = jnp.floor(pos).astype(jnp.int32)
        above = jnp.minimum(below + 1, last)
        frac = (pos - below).astype(jnp.float32)
        return ordered[below] + frac * (ordered[above] - ordered[below])
    if init == "random":
        scores = jnp.where(alive, jax.random.gumbel(key, values.shape), -jnp.inf)
        _, idx = jax.lax.top_k(scores, k)
        return jnp.sort(values[idx])
    return _kmeans_plus_plus(values, alive, k, key)


def _kmeans_plus_plus(values, alive, k, key):
    keys = jax.random.split(key, k)
    first = jax.random.categorical(keys[0], jnp.where(alive, 0.0, -jnp.inf))
    centroids = jnp.zeros(k, jnp.float32).at[:].set(values[first])

    def pick(i, state):
        centroids, dist2 = state
        # If every survivor already sits on a centroid (duplicates), fall back to uniform.
        w = jnp.where(alive, dist2, 0.0)
        w = jnp.where(jnp.sum(w) > 0, w, alive.astype(jnp.float32))
        nxt = values[jax.random.categorical(keys[i], jnp.log(w))]
        return centroids.at[i].set(nxt), jnp.minimum(dist2, (values - nxt) ** 2)

    centroids, _ = jax.lax.fori_loop(1, k, pick, (centroids, (values - values[first]) ** 2))
    return jnp.sort(centroids)


@functools.partial(jax.jit, static_argnames=("num_clusters", "init", "iters"))
def kmeans_1d(
    values,
    weights_mask,
    num_clusters: int,
    init: str = "linear",
    key=None,
    iters: int = 100,
    tol: float = 0.0,
) -> KMeansResult:
    """Lloyd's k-means in 1-D over the surviving (mask != 0) entries of `values`.

    Each iteration assigns every survivor to its nearest centroid (ties to the lower
    index) and moves each centroid to the mean of its members; a centroid with no members
    stays where it is. Stops after `iters` iterations or once no centroid moved by more
    than `tol` (tol = 0: at a fixed point). jit-compiled (num_clusters, init, iters
    static); the loop is a lax.while_loop.

    Args:
      values: any-shape float array (flattened).
      weights_mask: same size; nonzero marks survivors. Needs at least one survivor.
      num_clusters: k >= 1.
      init: one of INITS, see `init_centroids`.
      key: PRNG key for 'random' and 'kmeans++' (default jax.random.key(0)).
      iters: maximum Lloyd iterations.
      tol: convergence threshold on the largest centroid move.
    """
    values = jnp.asarray(values, jnp.float32).reshape(-1)
    alive = jnp.asarray(weights_mask).reshape(-1) != 0
    weight = alive.astype(jnp.float32)
    start = init_centroids(values, alive, num_clusters, init, key)

    def assign(centroids):
        return jnp.argmin(jnp.abs(values[:, None] - centroids[None, :]), axis=1).astype(jnp.int32)

    def update(centroids):
        members = assign(centroids)
        sums = jax.ops.segment_sum(values * weight, members, num_segments=num_clusters)
        counts = jax.ops.segment_sum(weight, members, num_segments=num_clusters)
        return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), centroids)

    def cond(state):
        i, _, shift = state
        return (i < iters) & (shift > tol)

    def body(state):
        i, centroids, _ = state
        new = update(centroids)
        return i + 1, new, jnp.max(jnp.abs(new - centroids))

    n, centroids, _ = jax.lax.while_loop(cond, body, (0, start, jnp.float32(jnp.inf)))
    return KMeansResult(centroids, assign(centroids), jnp.asarray(n, jnp.int32))


def share_weights(w, mask, bits: int, init: str = "linear", key=None, *, iters: int = 100):
    """Clusters a layer's surviving weights into a 2**bits-entry codebook (host side).

    Entry 0 of the codebook is exactly 0.0 and is the pruned weight (code 0, EIE Sec.
    III-B); the survivors (mask != 0) are clustered by `kmeans_1d` into the remaining
    2**bits - 1 centroids, sorted ascending, and get codes 1 .. 2**bits - 1. Then
    w_shared = codebook[codes].

    Edge cases: with no survivors every code is 0 and the codebook is all zeros; with at
    most 2**bits - 1 distinct surviving values each value gets its own entry (exact), and
    the unused entries are 0.0 and unreferenced.

    Returns:
      (codebook (2**bits,) float32, codes int32 with w's shape), as NumPy arrays.
    """
    w = np.asarray(w, np.float32)
    mask = np.asarray(mask)
    if mask.shape != w.shape:
        raise ValueError(f"mask: shape {mask.shape} must equal the weights' shape {w.shape}")
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 16:
        raise ValueError(f"bits={bits!r}: must be an int in [1, 16]")
    if init not in INITS:
        raise ValueError(f"init={init!r}: must be one of {INITS}")
    k = (1 << bits) - 1
    alive = mask != 0
    codebook = np.zeros(k + 1, np.float32)
    codes = np.zeros(w.shape, np.int32)
    survivors = w[alive]
    distinct = np.unique(survivors)
    if distinct.size <= k:
        codebook[1 : 1 + distinct.size] = distinct
        codes[alive] = 1 + np.searchsorted(distinct, survivors)
        return codebook, codes
    key = jax.random.key(0) if key is None else key
    result = kmeans_1d(w, alive, num_clusters=k, init=init, key=key, iters=iters)
    centroids = np.asarray(result.centroids)
    # Lloyd's iterations keep 1-D centroids ordered only when no cluster empties; sort
    # explicitly so that codes grow with the weight value.
    order = np.argsort(centroids, kind="stable")
    rank = np.empty(k, np.int32)
    rank[order] = np.arange(k, dtype=np.int32)
    codebook[1:] = centroids[order]
    assignments = np.asarray(result.assignments).reshape(w.shape)
    codes[alive] = 1 + rank[assignments[alive]]
    return codebook, codes


def linear_quantize(w, mask=None, bits: int = 4, axis: int | None = -1):
    """Uniform symmetric integer quantisation, per output channel (W4A16-style baseline).

        q_max  = 2**(bits - 1) - 1                 (7 for 4 bits)
        scale  = max |w * mask| over the channel / q_max
        level  = clip(round(w / scale), -q_max, q_max) * mask
        w_hat  = level * scale

    Symmetric range [-q_max, q_max]: the two's-complement level -2**(bits-1) (-8) is unused,
    so zero is exact and the grid has 2**bits - 1 levels. A channel whose weights are all
    zero (or pruned) gets scale 1.0 and levels 0. Survivors satisfy
    |w - w_hat| <= scale / 2.

    Args:
      w: weights; mask: same shape, nonzero = kept (default: all kept).
      bits: 2..16.
      axis: the output-channel axis (-1 for an NNX kernel (in, out), 0 for EIE's (out, in)
        layout); None for a single per-tensor scale.
    Returns:
      (levels int32 with w's shape, scales float32 broadcastable against w), JAX arrays.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 2 <= bits <= 16:
        raise ValueError(f"bits={bits!r}: must be an int in [2, 16]")
    w = jnp.asarray(w, jnp.float32)
    if axis is not None and not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis={axis}: must be None or in [{-w.ndim}, {w.ndim - 1}]")
    keep = jnp.ones_like(w) if mask is None else (jnp.asarray(mask) != 0).astype(jnp.float32)
    if keep.shape != w.shape:
        raise ValueError(f"mask: shape {keep.shape} must equal the weights' shape {w.shape}")
    q_max = (1 << (bits - 1)) - 1
    reduce = None if axis is None else tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    amax = jnp.max(jnp.abs(w * keep), axis=reduce, keepdims=True)
    scales = jnp.where(amax > 0, amax / q_max, 1.0)
    levels = jnp.clip(jnp.round(w / scales), -q_max, q_max) * keep
    return levels.astype(jnp.int32), scales.astype(jnp.float32)


def linear_codebook(w, mask, bits: int = 4):
    """The per-tensor linear grid of `linear_quantize(axis=None)` as codes + codebook.

    A single table can hold one scale only, so this is the per-tensor variant. With
    q_max = 2**(bits-1) - 1 the 2*q_max + 1 = 2**bits - 1 levels fill codes 1..2**bits - 1
    exactly: code = level + q_max + 1, codebook[code] = level * scale, and codebook[0] =
    0.0 is the pruned weight (a kept weight that rounds to level 0 keeps its own code
    q_max + 1, whose value is also 0.0). This is the format EIE consumes, so the integer
    grid can run on the same datapath as the k-means codebook.

    Returns:
      (codebook (2**bits,) float32, codes int32 with w's shape), as NumPy arrays.
    """
    levels, scale = linear_quantize(w, mask, bits, axis=None)
    q_max = (1 << (bits - 1)) - 1
    scale = float(np.asarray(scale).reshape(()))
    codebook = np.zeros(1 << bits, np.float32)
    codebook[1:] = np.arange(-q_max, q_max + 1, dtype=np.float32) * scale
    keep = np.ones(np.shape(w), bool) if mask is None else np.asarray(mask) != 0
    codes = np.where(keep, np.asarray(levels) + q_max + 1, 0).astype(np.int32)
    return codebook, codes


def _check_static(num_clusters, init):
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
        raise ValueError(f"num_clusters={num_clusters!r}: must be an int >= 1")
    if init not in INITS:
        raise ValueError(f"init={init!r}: must be one of {INITS}")
