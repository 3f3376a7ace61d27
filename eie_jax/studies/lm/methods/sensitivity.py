"""Sensitivity-weighted k-means (SqueezeLLM, Kim et al. 2023, without its dense-and-sparse
split): every weight's Fisher information weights its k-means distance.

Fisher information (`fisher`): for each compressible layer, the mean over calibration
windows of the squared gradient, with respect to each entry of the layer's kernel, of the
window's loss (mean next-character cross entropy in nats/char against the true next
characters), through the model's own forward: F = mean_n (dL_n / dW)**2, (M, K) in EIE's
orientation. `calibration_fisher` takes the windows `training.calibration_inputs` takes
(`training.calibration_windows`: config.quantize.calibration_windows training windows of
one calibration draw).

Weighted k-means (`weighted_kmeans`): Lloyd's over 1-D values with a weight f_i >= 0 each,
minimising sum_i f_i (w_i - c(i))**2: every value goes to its nearest centroid (ties to
the lower index, as kmeans.assign) and every centroid with positive weight among its
members moves to their weighted mean sum f_i w_i / sum f_i (others stay); it stops after
`iters` iterations or at a fixed point. A row of values whose weights sum to 0 is
clustered with equal weights (plain k-means). Starts (`init_centroids`), per row:
  linear:   evenly spaced over [min, max] (Deep Compression's linear init, kmeans.row_kmeans);
  density:  weighted quantiles, c_i = the smallest value whose cumulative weight reaches
            (i + 1/2) / k of the row's total: each start holds about 1/k of the weight.

Two quantizers of the one registry (`compression.quantizers`), calibrated by the Fisher
matrix (their `calibration` argument is the layer's (M, K) Fisher information, not its
inputs; `FISHER` names them and `methods.run_job` passes it):
  squeezellm_layer  one table per layer, as `share.share_weights`: entry 0 is the pruned
                    zero (code 0), the survivors share 2**b - 1 weighted-k-means centroids,
                    sorted, codes 1 .. 2**b - 1 (at most 2**b - 1 distinct survivors: each
                    its own entry); EIE runs it. Bits: `bits.layer_codebook` (dense codes
                    and a 2**b - 1 entry fp16 table), as kmeans_layer at sparsity 0.
  squeezellm_row    a 2**b-entry table per output row, as kmeans_row; not on EIE.
                    Bits: `bits.row_codebook`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from eie_jax.compression import quantizers, share
from eie_jax.compression.layers import MaskedLayer, compressible_layers, to_hardware
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count
from eie_jax.utils.cli import UserError

INITS = ("linear", "density")
LAYER_ITERS = 100  # share.share_weights' default
ROW_ITERS = 25  # kmeans.row_kmeans' default

# ------------------------------------------------------------------ Fisher information


def fisher(model, inputs, targets, *, batch_size: int = 16) -> dict[str, np.ndarray]:
    """{layer name: (M, K) float32}: the mean over the windows (inputs, targets), each
    (N, T) ints, of the squared gradient of the window's mean cross entropy with respect
    to each compressible layer's kernel, in EIE's (M, K) orientation (zero where pruned).

    One compiled function: per-window gradients (vmap of grad) batch_size windows at a
    time, a scan over the batches (the last one padded with windows of weight 0).
    """
    inputs, targets = np.asarray(inputs, np.int32), np.asarray(targets, np.int32)
    if inputs.ndim != 2 or inputs.shape != targets.shape or len(inputs) == 0:
        raise ValueError(f"inputs {inputs.shape}, targets {targets.shape}: want equal (N, T)")
    for name, layer in compressible_layers(model):
        if layer.kernel is None:
            raise ValueError(f"fisher: layer {name!r} is {layer.phase!r}; it has no kernel")
    n, batch = len(inputs), max(1, min(batch_size, len(inputs)))
    pad = -n % batch
    shape = (-1, batch, inputs.shape[1])
    x = np.concatenate([inputs, np.repeat(inputs[:1], pad, 0)]).reshape(shape)
    y = np.concatenate([targets, np.repeat(targets[:1], pad, 0)]).reshape(shape)
    share = np.concatenate([np.full(n, 1.0 / n), np.zeros(pad)]).astype(np.float32)
    graphdef, kernels, rest = nnx.split(model, _kernel_filter(model), ...)
    sums = _fisher_sums(graphdef, kernels, rest, x, y, share.reshape(shape[:2]))
    squared = nnx.merge(graphdef, sums, rest)
    return {
        name: np.asarray(to_hardware(layer.kernel[...]), np.float32)
        for name, layer in compressible_layers(squared)
    }


def calibration_fisher(model, corpus, config, draw: int = 0) -> dict[str, np.ndarray]:
    """`fisher` on the calibration windows of draw `draw` (`training.calibration_windows`)."""
    inputs, targets = lm.calibration_windows(corpus, config, draw)
    return fisher(model, inputs, targets)


def _kernel_filter(model):
    paths = {(*path, "kernel") for path, m in nnx.iter_modules(model) if isinstance(m, MaskedLayer)}
    return lambda path, _: tuple(path) in paths


@functools.partial(jax.jit, static_argnums=0)
def _fisher_sums(graphdef, kernels, rest, x, y, share):
    def window_loss(kernels, inputs, targets):
        logits = nnx.merge(graphdef, kernels, rest)(inputs[None])[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    per_window = jax.vmap(jax.grad(window_loss), in_axes=(None, 0, 0))

    def add(total, batch):
        inputs, targets, weights = batch
        grads = per_window(kernels, inputs, targets)
        step = lambda t, g: t + jnp.tensordot(weights, g * g, axes=1)  # noqa: E731
        return jax.tree.map(step, total, grads), None

    total, _ = jax.lax.scan(add, jax.tree.map(jnp.zeros_like, kernels), (x, y, share))
    return total


# ------------------------------------------------------------------ weighted k-means


def _rows(values, weights):
    values = jnp.asarray(values, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    one = values.ndim == 1
    values, weights = jnp.atleast_2d(values), jnp.atleast_2d(weights)
    # Scale-free: each row's weights times the power of 2 (exact) that brings the largest
    # into [0.5, 1), so that tiny Fisher values neither underflow nor lose precision; an
    # all-zero row -> equal weights.
    top = weights.max(axis=1, keepdims=True)
    _, exponent = jnp.frexp(top)
    weights = jnp.where(top > 0, weights * jnp.ldexp(jnp.float32(1.0), -exponent), 1.0)
    return values, weights, one


@functools.partial(jax.jit, static_argnames=("k", "init"))
def init_centroids(values, weights, k: int, init: str = "linear"):
    """Starts (k,) for values (N,), or (R, k) per row for values (R, N); see the module."""
    if init not in INITS:
        raise ValueError(f"init={init!r}: allowed: {INITS}")
    values, weights, one = _rows(values, weights)
    if init == "linear":
        lo, hi = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
        start = lo + (hi - lo) * jnp.linspace(0.0, 1.0, k)[None, :]
    else:
        order = jnp.argsort(values, axis=1, stable=True)
        ordered = jnp.take_along_axis(values, order, axis=1)
        cumulative = jnp.cumsum(jnp.take_along_axis(weights, order, axis=1), axis=1)
        fractions = ((np.arange(k) + 0.5) / k).astype(np.float32)  # host-rounded constants
        targets = cumulative[:, -1:] * fractions[None, :]
        at = jax.vmap(lambda c, t: jnp.searchsorted(c, t, side="left"))(cumulative, targets)
        start = jnp.take_along_axis(ordered, jnp.minimum(at, values.shape[1] - 1), axis=1)
    return start[0] if one else start


def _assign(values, centroids):
    distance = jnp.abs(values[:, :, None] - centroids[:, None, :])
    return jnp.argmin(distance, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("iters",))
def weighted_lloyd(values, weights, start, iters: int):
    """(centroids, codes) of weighted Lloyd's from `start`: values, weights (N,) with start
    (k,), or (R, N) with (R, k) per row. At most `iters` iterations (stops at a fixed
    point); centroids in start's order (not sorted)."""
    values, weights, one = _rows(values, weights)
    start = jnp.atleast_2d(jnp.asarray(start, jnp.float32))
    rows, k = start.shape
    offsets = (jnp.arange(rows, dtype=jnp.int32) * k)[:, None]

    def update(centroids):
        slots = (_assign(values, centroids) + offsets).reshape(-1)
        sums = jax.ops.segment_sum((weights * values).reshape(-1), slots, rows * k)
        mass = jax.ops.segment_sum(weights.reshape(-1), slots, rows * k)
        sums, mass = sums.reshape(rows, k), mass.reshape(rows, k)
        return jnp.where(mass > 0, sums / jnp.where(mass > 0, mass, 1.0), centroids)

    def go_on(state):
        i, _, moved = state
        return (i < iters) & moved

    def step(state):
        i, centroids, _ = state
        new = update(centroids)
        return i + 1, new, jnp.any(new != centroids)

    _, centroids, _ = jax.lax.while_loop(go_on, step, (0, start, jnp.bool_(True)))
    codes = _assign(values, centroids)
    return (centroids[0], codes[0]) if one else (centroids, codes)


def weighted_kmeans(values, weights, k: int, iters: int = ROW_ITERS, init: str = "linear"):
    """(centroids, codes): `init_centroids` then `weighted_lloyd`, NumPy out; values and
    weights (N,), or (R, N) clustered row by row. Weights must be finite and >= 0."""
    weights = np.asarray(weights, np.float32)
    if np.shape(values) != weights.shape:
        raise ValueError(f"weights: shape {weights.shape}; the values' is {np.shape(values)}")
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError("weights: must be finite and >= 0")
    start = init_centroids(values, weights, k, init)
    centroids, codes = weighted_lloyd(values, weights, start, iters)
    return np.asarray(centroids), np.asarray(codes)


def layer_codebook(w, weights, mask, bits: int, init: str = "linear", iters: int = LAYER_ITERS):
    """(codebook (2**bits,), codes (M, K)) of one weighted k-means table over the
    survivors (mask != 0), with `share.share_weights`' conventions: entry 0 = 0.0 is
    the pruned weight, the 2**bits - 1 centroids sorted ascending, codes 1 .. 2**bits - 1;
    at most 2**bits - 1 distinct survivors: each its own entry."""
    w = np.asarray(w, np.float32)
    alive = np.ones(w.shape, bool) if mask is None else np.asarray(mask) != 0
    k = (1 << bits) - 1
    survivors = w[alive]
    if np.unique(survivors).size <= k:  # nothing to cluster: share_weights' exact table
        return share.share_weights(w, alive, bits)
    centroids, assignments = weighted_kmeans(survivors, np.asarray(weights)[alive], k, iters, init)
    order = np.argsort(centroids, kind="stable")  # an emptied cluster may break the order
    codes = np.zeros(w.shape, np.int32)
    codes[alive] = 1 + np.argsort(order)[assignments]  # argsort(order): each centroid's rank
    return np.concatenate([[0.0], centroids[order]]).astype(np.float32), codes


# ------------------------------------------------------------------ quantizers

FISHER: set[str] = set()  # the quantizers whose calibration is the Fisher matrix (M, K)


def register(name: str, *, one_table: bool = False):
    """Registers fn(w, mask, bits, *, calibration, init, key) -> Quantized in the one
    registry as a calibrated quantizer whose `calibration` is the layer's Fisher (M, K)."""

    def add(fn):
        quantizers.register(name, calibrated=True, one_table=one_table)(fn)
        FISHER.add(name)
        return fn

    return add


def _checked(w, calibration, init):
    if np.shape(calibration) != np.shape(w):
        raise ValueError(
            f"calibration: shape {np.shape(calibration)}; a Fisher-calibrated quantizer "
            f"takes the layer's Fisher information, the weights' shape {np.shape(w)}"
        )
    init = "linear" if init is None else init
    if init not in INITS:
        raise UserError(f"init={init!r}: the squeezellm quantizers allow {INITS}")
    return init


@register("squeezellm_layer", one_table=True)
def squeezellm_layer(w, mask, bits, *, calibration=None, init="linear", key=None):
    """One Fisher-weighted k-means table per layer, entry 0 the pruned zero (EIE runs it)."""
    del key
    init = _checked(w, calibration, init)
    codebook, codes = layer_codebook(w, calibration, mask, bits, init)
    return quantizers.Quantized(
        weights=codebook[codes],
        stored_bits=bit_count.layer_codebook(codes, bits),
        codebook=codebook,
        codes=codes,
        trainable=True,
    )


@register("squeezellm_row")
def squeezellm_row(w, mask, bits, *, calibration=None, init="linear", key=None):
    """A Fisher-weighted k-means table of 2**bits entries per output row (not on EIE)."""
    del key
    init = _checked(w, calibration, init)
    w = np.asarray(w, np.float32)
    alive = np.ones(w.shape, bool) if mask is None else np.asarray(mask) != 0
    w, weights = np.where(alive, w, 0.0), np.where(alive, calibration, 0.0)
    centroids, codes = weighted_kmeans(w, weights, 1 << bits, ROW_ITERS, init)
    w_hat = np.where(alive, np.take_along_axis(centroids, codes, axis=1), 0.0)
    return quantizers.Quantized(
        weights=w_hat.astype(np.float32), stored_bits=bit_count.row_codebook(w.shape, bits)
    )
