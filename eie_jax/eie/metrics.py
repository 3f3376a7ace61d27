"""Timing metrics of EIE design points: the batched cycle count and load efficiency.

`batched_cycles` is the one vmapped form of the datapath's timing recurrence
(`cycles_from_counts`): over design points (per-point counts and FIFO depths) or over
inputs (a trained layer on a test set: one count matrix, many activation patterns);
`batched_rtl_cycles` the same for the rtl timing (`rtl_cycles_from_counts`). Sweeps,
whose points differ in length and PE count, pack them on tracks instead
(`timing.packed_cycles`).
`load_efficiency` is the paper's measure (ISCA 2016, Sec. VI-A): mean busy cycles of the
PEs over the layer's total cycles.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.eie.timing import cycles_from_counts, rtl_cycles_from_counts


def load_efficiency(pe_busy, total_cycles):
    """mean(pe_busy, axis=-1) / total_cycles, and 0 where total_cycles is 0.

    pe_busy (..., N) busy cycles of each PE; total_cycles (...) the slowest PE's cycles.
    JAX arrays (also under jit: `simulate` uses it) give a jax.Array; NumPy in gives NumPy
    out in float64 (a float for unbatched inputs).
    """
    if isinstance(pe_busy, jax.Array) or isinstance(total_cycles, jax.Array):
        total = jnp.asarray(total_cycles)
        return jnp.where(total > 0, jnp.mean(pe_busy, axis=-1) / jnp.maximum(total, 1), 0.0)
    busy = np.mean(np.asarray(pe_busy, np.float64), axis=-1)
    total = np.asarray(total_cycles, np.float64)
    out = np.where(total > 0, busy / np.maximum(total, 1), 0.0)
    return float(out) if out.ndim == 0 else out


@functools.partial(jax.jit, static_argnames=("history",))
def batched_cycles(counts, active, fifo_depth, *, history: int):
    """cycles_from_counts vmapped over a leading batch axis B of any of its inputs.

    counts (N, K) or (B, N, K): entries per PE and broadcast column; active (K,) or (B, K):
    whether each column is broadcast; fifo_depth () or (B,), each <= history. An input
    without the batch axis is shared by every batch element. Returns (pe_cycles, pe_busy),
    each (B, N).
    """
    axes = (0 if counts.ndim == 3 else None, 0 if active.ndim == 2 else None)
    axes += (0 if np.ndim(fifo_depth) == 1 else None,)
    run = functools.partial(cycles_from_counts, history=history)
    return jax.vmap(run, in_axes=axes)(counts, active, fifo_depth)


@functools.partial(jax.jit, static_argnames=("history",))
def batched_rtl_cycles(
    counts, active, fifo_depth, columns, bias_counts, bias_col, num_pes, *, history: int
):
    """rtl_cycles_from_counts vmapped over a leading batch axis B of every input.

    counts (B, N, K), active (B, K), fifo_depth (B,), columns (B, K), bias_counts (B, N),
    bias_col (B,), num_pes (B,): as rtl_cycles_from_counts takes them for one point.
    Returns (pe_cycles, pe_busy), each (B, N).
    """
    run = functools.partial(rtl_cycles_from_counts, history=history)
    return jax.vmap(run)(counts, active, fifo_depth, columns, bias_counts, bias_col, num_pes)
