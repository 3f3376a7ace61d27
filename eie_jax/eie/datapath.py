"""A functional, cycle-level model of EIE's datapath (Han et al., ISCA 2016, Sec. III-IV).

The central unit broadcasts each nonzero activation (a_j, j) to all N PEs (zero
activations are skipped by the LNZD tree). Each PE queues it in a FIFO of depth D and
then spends one cycle per (v, z) entry of its slice of column j, padding included, or one
cycle for the pointer read when it has none. The broadcast stalls while any queue is full.
Timing, for broadcast i with n[k, i] entries on PE k:

    t_i    = max(t_{i-1} + 1, max_k s[k, i - D])        (the max over s only when i >= D)
    s[k,i] = max(f[k, i-1], t_i)                         (start once queued and idle)
    f[k,i] = s[k, i] + max(n[k, i], 1)                   (finish)

Arithmetic, per output row in increasing column order:
acc = clip(acc + ((w_q * a_q) >> weight_frac_bits), -2**15, 2**15 - 1).

One jit-compiled loop over the broadcast activations does both: its carry holds every
PE's finish time (N,), the broadcast clock, the last D stall bounds and the PEs'
accumulators (N, rows per PE); inside a step the N PEs are a vectorised leading axis and
each PE applies its slice of column j (rows within a slice are distinct, so the slice
updates the accumulators at once, with the same result as the hardware's one entry per
cycle). Zero activations are skipped before the loop, as the LNZD tree skips them, so
the loop runs once per broadcast: a `lax.fori_loop` with a traced trip count, since a
`lax.scan` would have to step through every column. The smooth surrogate in cost.py,
which must be reverse-differentiable, runs the same `timing_step` in a `lax.scan`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from eie_jax.eie import fixed_point
from eie_jax.eie.config import EIEConfig
from eie_jax.eie.encode import ColumnSlices, EncodedLayer


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["outputs", "pe_cycles", "pe_busy", "total_cycles", "load_efficiency", "time_us"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class SimResult:
    """What one run of a layer on EIE gives (leading batch axis under simulate_batch).

    Attributes:
      outputs: (M,) layer outputs in 16-bit fixed point, as floats.
      pe_cycles: (N,) cycle at which each PE finished its last column.
      pe_busy: (N,) entries each PE processed, padding included.
      total_cycles: cycles until the slowest PE finished; 0 when nothing is broadcast.
      load_efficiency: mean(pe_busy) / total_cycles (0 when total_cycles is 0).
      time_us: total_cycles / clock_mhz.
    """

    outputs: jax.Array
    pe_cycles: jax.Array
    pe_busy: jax.Array
    total_cycles: jax.Array
    load_efficiency: jax.Array
    time_us: jax.Array


def history_size(fifo_depth: int) -> int:
    """Static length of the stall-bound history: the next power of two >= fifo_depth.

    Depths that share it share a compiled simulator (fifo_depth itself is traced).
    """
    return max(8, 1 << (int(fifo_depth) - 1).bit_length())


def timing_step(carry, n, active, fifo_depth, work=None, pe_max=None):
    """One broadcast of the timing recurrence; a no-op where `active` is False.

    carry = (f, t, hist): f (N,) finish times, t the last broadcast time, hist (H,) the
    max start times of the last H broadcasts, most recent first (zeros before any: the
    bound is then t_{i-1} + 1 >= 0 anyway). `work` and `pe_max` replace max(n, 1) and the
    max over PEs (the smooth surrogate in cost.py passes its own); `active` may be a
    probability, which blends the stepped and the unchanged state.
    """
    f, t, hist = carry
    work = work if work is not None else jnp.maximum(n, 1)
    pe_max = pe_max if pe_max is not None else jnp.max
    t_new = jnp.maximum(t + 1, hist[fifo_depth - 1])
    s = jnp.maximum(f, t_new)
    stepped = (s + work, t_new, jnp.concatenate([pe_max(s)[None], hist[:-1]]))
    if jnp.issubdtype(jnp.asarray(active).dtype, jnp.bool_):
        return jax.tree.map(lambda new, old: jnp.where(active, new, old), stepped, carry)
    return jax.tree.map(lambda new, old: old + active * (new - old), stepped, carry)


def initial_timing(num_pes: int, history: int, dtype=jnp.int32):
    return (jnp.zeros(num_pes, dtype), jnp.asarray(-1, dtype), jnp.zeros(history, dtype))


@functools.partial(jax.jit, static_argnames=("history",))
def cycles_from_counts(counts, active, fifo_depth, *, history):
    """Per-PE finish cycles and busy entries from entry counts alone (no arithmetic).

    counts: (N, K) entries per PE and column; active: (K,) bool, broadcast columns;
    fifo_depth: int, may be traced (<= history). Returns (pe_cycles, pe_busy).
    """
    counts_by_column = counts.T.astype(jnp.int32)

    def body(j, valid, timing):
        return timing_step(timing, counts_by_column[j], valid, fifo_depth)

    init = initial_timing(counts.shape[0], history)
    f, _, _ = _for_each_broadcast(active, body, init, unroll=4)
    return f, jnp.sum(jnp.where(active[None, :], counts, 0), axis=1)


def _for_each_broadcast(active, body, init, unroll=1):
    """carry = body(j, valid, carry) for every broadcast column j, in increasing order.

    Zero activations are skipped up front, as the LNZD tree skips them, so the loop runs
    once per broadcast: a fori_loop with a traced trip count (a scan would have to step
    through every column). Steps past the last broadcast get valid=False. `unroll`
    broadcasts per iteration amortise XLA's per-iteration cost on CPU: it halves the
    cycles-only loop, whose steps are tiny, and slows the heavier arithmetic loop.
    """
    num_active = jnp.sum(active, dtype=jnp.int32)
    order = jnp.pad(jnp.argsort(~active, stable=True), (0, unroll))

    def chunk(c, carry):
        for u in range(unroll):
            i = c * unroll + u
            carry = body(order[i], i < num_active, carry)
        return carry

    return jax.lax.fori_loop(0, (num_active + unroll - 1) // unroll, chunk, init)


def _fixed_point_run(layer: ColumnSlices, xq, acc0, fifo_depth, *, history, weight_frac_bits):
    """Accumulators (N, R) and timing for quantised input xq (K,) and start values acc0."""
    wq = fixed_point.quantize(layer.codebook, weight_frac_bits).at[0].set(0)
    pe_ids = jnp.arange(layer.num_pes)[:, None]
    counts_by_column = layer.counts.T
    # One scratch row past the end absorbs the lanes beyond each slice's entries.
    acc0 = jnp.pad(acc0, ((0, 0), (0, 1)))

    def body(j, valid, carry):
        timing, acc = carry
        a = jnp.where(valid, xq[j], 0)  # a zero activation adds nothing
        w = wq[layer.codes[j].astype(jnp.int32)]
        rows = layer.rows[j].astype(jnp.int32)
        term = jnp.right_shift(w * a, weight_frac_bits)
        acc = fixed_point.saturating_add(acc, jnp.zeros_like(acc).at[pe_ids, rows].add(term))
        return timing_step(timing, counts_by_column[j], valid, fifo_depth), acc

    init = (initial_timing(layer.num_pes, history), acc0)
    (f, _, _), acc = _for_each_broadcast(xq != 0, body, init)
    busy = jnp.sum(jnp.where(xq[None, :] != 0, layer.counts, 0), axis=1)
    return acc[:, :-1], f, busy


def _float_outputs(layer: ColumnSlices, codebook, x, bias, relu):
    """The float model on the same slices: sum of codebook[v] * x[j] per row."""
    vals = codebook.at[0].set(0.0)[layer.codes.astype(jnp.int32)] * x[:, None, None]
    pe_ids = jnp.broadcast_to(jnp.arange(layer.num_pes)[None, :, None], vals.shape)
    y = jnp.zeros((layer.num_pes, layer.rows_per_pe + 1)).at[pe_ids, layer.rows].add(vals)
    y = _rows_to_outputs(y[:, :-1], layer.shape[0])
    if bias is not None:
        y = y + bias
    return jax.nn.relu(y) if relu else y


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _straight_through(relu, layer, fixed, codebook, x, bias):
    """Returns `fixed`; its gradient is the float model's (a straight-through estimator).

    The float model runs only when differentiating, so plain simulation pays nothing.
    """
    del layer, relu, codebook, x, bias
    return fixed


def _straight_through_fwd(relu, layer, fixed, codebook, x, bias):
    _, vjp = jax.vjp(lambda c, xx, b: _float_outputs(layer, c, xx, b, relu), codebook, x, bias)
    return fixed, vjp


def _straight_through_bwd(relu, vjp, g):
    del relu
    return (None, None, *vjp(g))


_straight_through.defvjp(_straight_through_fwd, _straight_through_bwd)


def _rows_to_outputs(per_pe, m):
    """(N, R) per-PE local rows -> (M,) outputs: row r = PE r mod N, local row r // N."""
    return per_pe.T.reshape(-1)[:m]


def _outputs_to_rows(values, num_pes, rows_per_pe):
    padded = jnp.zeros(num_pes * rows_per_pe, values.dtype).at[: values.shape[0]].set(values)
    return padded.reshape(rows_per_pe, num_pes).T


def simulate(layer: EncodedLayer, x, cfg: EIEConfig, relu: bool = False, bias=None) -> SimResult:
    """Runs one input x (K,) through the layer on EIE: fixed-point outputs and cycles.

    Outputs are bit-exact 16-bit fixed point forward; backward they carry the float
    model's gradient with respect to x, bias and layer.codebook (a straight-through
    estimator of every rounding). Cycles are integers and carry no gradient.
    """
    _check(layer, cfg, x, bias, batched=False)
    return _simulate(
        layer.slices, x, bias, cfg.fifo_depth, cfg.clock_mhz, **_static_args(cfg, relu)
    )


def simulate_batch(
    layer: EncodedLayer, xs, cfg: EIEConfig, relu: bool = False, bias=None
) -> SimResult:
    """simulate() over a batch (B, K): one compiled call, vmapped over the inputs."""
    _check(layer, cfg, xs, bias, batched=True)
    return _simulate_batch(
        layer.slices, xs, bias, cfg.fifo_depth, cfg.clock_mhz, **_static_args(cfg, relu)
    )


def simulate_cycles(layer: EncodedLayer, x, cfg: EIEConfig):
    """Only (pe_cycles, pe_busy) for input x: the timing scan without the arithmetic."""
    _check(layer, cfg, x, None, batched=False)
    active = fixed_point.quantize(x, cfg.act_frac_bits) != 0
    return cycles_from_counts(
        layer.counts, active, cfg.fifo_depth, history=history_size(cfg.fifo_depth)
    )


def _static_args(cfg: EIEConfig, relu: bool):
    return dict(
        history=history_size(cfg.fifo_depth),
        act_frac_bits=cfg.act_frac_bits,
        weight_frac_bits=cfg.weight_frac_bits,
        relu=bool(relu),
    )


def _simulate_impl(
    layer, x, bias, fifo_depth, clock_mhz, *, history, act_frac_bits, weight_frac_bits, relu
):
    af, wf = act_frac_bits, weight_frac_bits
    x = jnp.asarray(x, jnp.float32)
    xq = fixed_point.quantize(x, af)
    bq = jnp.zeros(layer.shape[0], jnp.int32) if bias is None else fixed_point.quantize(bias, af)
    acc0 = _outputs_to_rows(bq, layer.num_pes, layer.rows_per_pe)
    hw_layer = dataclasses.replace(layer, codebook=jax.lax.stop_gradient(layer.codebook))
    acc, f, busy = _fixed_point_run(
        hw_layer, xq, acc0, fifo_depth, history=history, weight_frac_bits=wf
    )
    if relu:
        acc = jnp.maximum(acc, 0)
    fixed = fixed_point.dequantize(_rows_to_outputs(acc, layer.shape[0]), af)
    # Backward: the float model at the quantised point (STE through every rounding).
    outputs = _straight_through(
        relu,
        hw_layer,
        fixed,
        fixed_point.quantize_ste(layer.codebook, wf),
        fixed_point.quantize_ste(x, af),
        None if bias is None else fixed_point.quantize_ste(bias, af),
    )
    total = jnp.max(f)
    return SimResult(
        outputs=outputs,
        pe_cycles=f,
        pe_busy=busy,
        total_cycles=total,
        load_efficiency=jnp.where(total > 0, jnp.mean(busy) / jnp.maximum(total, 1), 0.0),
        time_us=total / clock_mhz,
    )


_STATIC = ("history", "act_frac_bits", "weight_frac_bits", "relu")
_simulate = jax.jit(_simulate_impl, static_argnames=_STATIC)
_simulate_batch = jax.jit(
    lambda layer, xs, bias, fifo_depth, clock_mhz, **static: jax.vmap(
        lambda x: _simulate_impl(layer, x, bias, fifo_depth, clock_mhz, **static)
    )(xs),
    static_argnames=_STATIC,
)


def _check(layer: EncodedLayer, cfg: EIEConfig, x, bias, *, batched: bool):
    for field in ("num_pes", "index_bits", "weight_bits"):
        if getattr(layer, field) != getattr(cfg, field):
            raise ValueError(
                f"cfg.{field}={getattr(cfg, field)} differs from the layer's encoding "
                f"({getattr(layer, field)}): re-encode the layer with this config"
            )
    m, k = layer.shape
    want = ("(B, K)", 2) if batched else ("(K,)", 1)
    shape = jnp.shape(x)
    if len(shape) != want[1] or shape[-1] != k:
        raise ValueError(f"x: expected shape {want[0]} with K={k}, got {shape}")
    if bias is not None and jnp.shape(bias) != (m,):
        raise ValueError(f"bias: expected shape ({m},), got {jnp.shape(bias)}")
