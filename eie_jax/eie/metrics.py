"""Timing metrics of EIE design points: the batched cycle count and load efficiency.

`batched_cycles` is the one vmapped form of the datapath's timing recurrence
(`cycles_from_counts`): over design points (sweeps: per-point counts and FIFO depths) or
over inputs (a trained layer on a test set: one count matrix, many activation patterns).
`sweep_cycles` is the same recurrence rewritten for design-point sweeps, where each
point's counts hold its broadcast columns only (a prefix of the padded axis): a scan over
contiguous column slices with a ring buffer of stall bounds, no gathers of columns and no
history shift, several columns per step; tests/test_sweep.py checks it equal to
`cycles_from_counts` on random cases. `load_efficiency` is the paper's measure (ISCA 2016,
Sec. VI-A): mean busy cycles of the PEs over the layer's total cycles.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.eie.datapath import cycles_from_counts


def load_efficiency(pe_busy, total_cycles):
    """mean(pe_busy, axis=-1) / total_cycles, and 0 where total_cycles is 0.

    pe_busy (..., N) busy cycles of each PE; total_cycles (...) the slowest PE's cycles.
    NumPy in, NumPy out (a float for unbatched inputs).
    """
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


@functools.partial(jax.jit, static_argnames=("history", "unroll"))
def sweep_cycles(counts, num_cols, fifo_depth, *, history: int, unroll: int = 8):
    """Per-PE cycles of B design points whose broadcast columns come first.

    counts (K, B, N) int32: point b's entries per PE in its k-th broadcast column, for
    k < num_cols[b] (columns past it are ignored); num_cols (B,); fifo_depth (B,), each
    <= history. K must be a multiple of `unroll` (columns per scan step). Returns
    (pe_cycles, pe_busy), each (B, N): what cycles_from_counts gives each point.

    The recurrence of datapath.timing_step, t_i = max(t_{i-1} + 1, S_{i-D}), s = max(f, t_i),
    f = s + max(n, 1), S_i = max_k s: the last `history` values of S sit in a ring buffer
    (slot i mod history), so the bound of step i is slot (i - D) mod history, which still
    holds 0 for i < D (the slots are written in order and D <= history).
    """
    k, b, n = counts.shape
    steps = counts.reshape(k // unroll, unroll, b, n)
    points = jnp.arange(b)

    def step(carry, block):
        f, t, ring, i = carry
        for u in range(unroll):
            col = block[u]
            bound = ring[(i - fifo_depth) % history, points]
            t_new = jnp.maximum(t + 1, bound)
            s = jnp.maximum(f, t_new[:, None])
            ring = ring.at[i % history].set(jnp.max(s, axis=1))
            valid = i < num_cols
            f = jnp.where(valid[:, None], s + jnp.maximum(col, 1), f)
            t = jnp.where(valid, t_new, t)
            i = i + 1
        return (f, t, ring, i), None

    init = (
        jnp.zeros((b, n), jnp.int32),
        jnp.full((b,), -1, jnp.int32),
        jnp.zeros((history, b), jnp.int32),
        jnp.int32(0),
    )
    (f, _, _, _), _ = jax.lax.scan(step, init, steps)
    broadcast = jnp.arange(k)[:, None, None] < num_cols[None, :, None]
    return f, jnp.sum(jnp.where(broadcast, counts, 0), axis=0)
