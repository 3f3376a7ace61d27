"""A functional, cycle-level model of EIE's datapath (Han et al., ISCA 2016, Sec. III-IV).

The central unit broadcasts each nonzero activation (a_j, j) to all N PEs (zero
activations are skipped by the LNZD tree). Each PE queues it in a FIFO and then spends
one cycle per (v, z) entry of its slice of column j, padding included, or one cycle for
the pointer read when it has none; the broadcast stalls while any queue is full. The
cycle counts follow cfg.timing: "paper" (the paper's model) or "rtl" (the reference
cycle-level simulator's rules); both recurrences are in timing.py.

Arithmetic, per output row in increasing column order:
acc = clip(acc + ((w_q * a_q) >> weight_frac_bits), -2**15, 2**15 - 1).

One jit-compiled loop over the broadcast activations does both: its carry holds the
timing state and the PEs' accumulators (N, rows per PE); inside a step the N PEs are a
vectorised leading axis and each PE applies its slice of column j (rows within a slice
are distinct, so the slice updates the accumulators at once, with the same result as the
hardware's one entry per cycle). Zero activations are skipped before the loop, as the
LNZD tree skips them, so the loop runs once per broadcast (timing.for_each_broadcast).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression.sparse_format import column_counts
from eie_jax.eie import fixed_point, metrics, timing
from eie_jax.eie.config import EIEConfig
from eie_jax.eie.encode import ColumnSlices, EncodedLayer, check_finite


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
      pe_cycles: (N,) paper timing: the cycle at which each PE finished its last column;
        rtl timing: max(1 + the cycle of PE k's last write, t_empty, 9), the cycle by
        which PE k has written its last output and every item has been sent (timing.py).
      pe_busy: (N,) entries each PE processed for the broadcast activations, padding
        included (the same in both timings; the rtl bias item is not counted).
      total_cycles: max(pe_cycles); paper: 0 when nothing is broadcast; rtl: at least 9.
      load_efficiency: mean(pe_busy) / total_cycles (0 when total_cycles is 0).
      time_us: total_cycles / clock_mhz.
    """

    outputs: jax.Array
    pe_cycles: jax.Array
    pe_busy: jax.Array
    total_cycles: jax.Array
    load_efficiency: jax.Array
    time_us: jax.Array


def _fixed_point_run(layer: ColumnSlices, xq, acc0, bias_counts, fifo_depth, **static):
    """Accumulators (N, R), pe_cycles and pe_busy for quantised input xq (K,).

    acc0 holds the accumulators' start values (the bias); bias_counts (N,) the bias
    item's entries (rtl timing only). static: history, weight_frac_bits, timing.
    """
    mode, weight_frac_bits = static["timing"], static["weight_frac_bits"]
    num_pes = layer.num_pes
    wq = fixed_point.quantize(layer.codebook, weight_frac_bits).at[0].set(0)
    pe_ids = jnp.arange(num_pes)[:, None]
    counts_by_column = layer.counts.T
    # One scratch row past the end absorbs the lanes beyond each slice's entries.
    acc0 = jnp.pad(acc0, ((0, 0), (0, 1)))

    def body(j, carry):
        clock, acc = carry
        a = xq[j]
        w = wq[layer.codes[j].astype(jnp.int32)]
        rows = layer.rows[j].astype(jnp.int32)
        term = jnp.right_shift(w * a, weight_frac_bits)
        acc = fixed_point.saturating_add(acc, jnp.zeros_like(acc).at[pe_ids, rows].add(term))
        clock = timing.step(mode, clock, j, counts_by_column[j], fifo_depth, deltas)
        return clock, acc

    deltas, bias_delta = None, None
    if mode == "rtl":
        k = layer.shape[1]
        bias_col = timing.bias_column(k, num_pes)
        deltas, bias_delta = timing.send_deltas(jnp.arange(k), xq != 0, bias_col, num_pes)
    init = (timing.start(mode, num_pes, static["history"]), acc0)
    clock, acc = timing.for_each_broadcast(xq != 0, body, init)
    pe_cycles = timing.finish(mode, clock, fifo_depth, bias_counts, bias_delta)
    busy = jnp.sum(jnp.where(xq[None, :] != 0, layer.counts, 0), axis=1)
    return acc[:, :-1], pe_cycles, busy


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


def batch_bytes(batch: int, num_pes: int, in_features: int) -> int:
    """Host memory simulate_batch needs, to within a small factor: its timing holds every
    input's (num_pes, in_features) int32 entry counts (measured on CPU: 3.2-3.5 KB per
    input and PE for 784 inputs, at 1,024-16,384 PEs)."""
    return 4 * batch * num_pes * in_features


def simulate_cycles(layer: EncodedLayer, x, cfg: EIEConfig, bias=None):
    """Only (pe_cycles, pe_busy) for input x: the timing loop without the arithmetic.

    The bias matters to the rtl timing only (its nonzero entries form the bias item).
    """
    _check(layer, cfg, x, bias, batched=False)
    active = fixed_point.quantize(x, cfg.act_frac_bits) != 0
    history = timing.history_size(cfg.fifo_depth)
    if cfg.timing == "paper":
        return timing.cycles_from_counts(layer.counts, active, cfg.fifo_depth, history=history)
    m, k = layer.shape
    bias_counts = bias_entries(bias, m, cfg)
    return timing.rtl_cycles_from_counts(
        layer.counts,
        active,
        cfg.fifo_depth,
        jnp.arange(k),
        bias_counts,
        timing.bias_column(k, cfg.num_pes),
        cfg.num_pes,
        history=history,
    )


def bias_entries(bias, num_rows: int, cfg: EIEConfig) -> np.ndarray:
    """(N,) entries of the rtl timing's bias item, on the host: the nonzero quantised
    biases encoded as one more column (zeros without a bias)."""
    if bias is None:
        return np.zeros(cfg.num_pes, np.int32)
    quantised = np.asarray(fixed_point.quantize(np.reshape(bias, (num_rows, 1)), cfg.act_frac_bits))
    return column_counts((quantised != 0).astype(np.int32), cfg.num_pes, cfg.index_bits)[:, 0]


def _static_args(cfg: EIEConfig, relu: bool):
    return dict(
        history=timing.history_size(cfg.fifo_depth),
        act_frac_bits=cfg.act_frac_bits,
        weight_frac_bits=cfg.weight_frac_bits,
        index_bits=cfg.index_bits,
        timing=cfg.timing,
        relu=bool(relu),
    )


def _simulate_impl(layer, x, bias, fifo_depth, clock_mhz, *, act_frac_bits, relu, **static):
    af, wf = act_frac_bits, static["weight_frac_bits"]
    x = jnp.asarray(x, jnp.float32)
    xq = fixed_point.quantize(x, af)
    bq = jnp.zeros(layer.shape[0], jnp.int32) if bias is None else fixed_point.quantize(bias, af)
    acc0 = _outputs_to_rows(bq, layer.num_pes, layer.rows_per_pe)
    bias_counts = (
        timing.column_entries(bq != 0, layer.num_pes, static["index_bits"])
        if static["timing"] == "rtl"
        else None
    )
    hw_layer = dataclasses.replace(layer, codebook=jax.lax.stop_gradient(layer.codebook))
    acc, f, busy = _fixed_point_run(hw_layer, xq, acc0, bias_counts, fifo_depth, **static)
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
        load_efficiency=metrics.load_efficiency(busy, total),
        time_us=total / clock_mhz,
    )


_STATIC = ("history", "act_frac_bits", "weight_frac_bits", "index_bits", "timing", "relu")
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
    check_finite("xs" if batched else "x", x)
    check_finite("bias", bias)  # the codebook was checked once, by encode
