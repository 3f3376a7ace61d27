"""Many EIE design points in few compiled calls: group by padded shape, shard the batch.

Each point is its entries per PE in each broadcast column (N_i, K_i) and a FIFO depth;
points are grouped by K class, padded to one shape per group and evaluated by
`eie.metrics.sweep_cycles`, the batch axis sharded over the devices with a
jax.sharding Mesh: every process's devices under jax.distributed (each process puts its
own shards; the results are gathered to every process).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from eie_jax import eie
from eie_jax.eie import metrics
from eie_jax.sweep import multihost

# Points whose broadcast counts share floor(log2(K - 1) / K_CLASS_BITS) share a compiled call.
K_CLASS_BITS = 2


def iter_cycles(
    counts: Sequence[np.ndarray],
    fifo_depths: Sequence[int],
    *,
    devices: Sequence[jax.Device] | None = None,
    max_batch_elements: int = 1 << 25,
) -> Iterator[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
    """Per-PE cycles of many design points, one compiled call per padded shape.

    counts[i] (N_i, K_i) holds design point i's entries per PE in each *broadcast* column;
    fifo_depths[i] its queue depth. Points are grouped by K class (log2 K_i in steps of
    K_CLASS_BITS); a group pads N, K and the batch to common sizes and runs as chunks of one
    shape, the batch axis sharded over `devices` (default: jax.devices(), every process's).
    Zero-count PEs added by padding finish no later than the real ones, so they change
    neither the broadcast stalls nor the maximum. Yields (indices, pe_cycles, pe_busy) per
    chunk, each array trimmed to the point's N.
    """
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("points",))
    by_point = NamedSharding(mesh, PartitionSpec("points"))
    by_column_point = NamedSharding(mesh, PartitionSpec(None, "points"))
    ndev = len(devices)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        # Classes a factor of 4 wide: each compile costs about a second on CPU, so fewer
        # groups beat tighter padding (the loop runs to the group's longest point).
        groups.setdefault(max(c.shape[1] - 1, 0).bit_length() // K_CLASS_BITS, []).append(i)
    for _, members in sorted(groups.items()):
        n_pad = max(counts[i].shape[0] for i in members)
        k_pad = max(_round_up(max(counts[i].shape[1] for i in members), 128), 128)
        history = eie.history_size(max(fifo_depths[i] for i in members))
        per_chunk = max(1, max_batch_elements // (n_pad * k_pad))
        per_chunk = _round_up(min(per_chunk, len(members)), ndev)
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            # Column-major: the scan reads one contiguous (points, PEs) slice per column.
            batch = np.zeros((k_pad, per_chunk, n_pad), np.int32)
            num_cols = np.zeros(per_chunk, np.int32)
            # Batch padding repeats a real depth; its results are dropped.
            depth = np.full(per_chunk, fifo_depths[chunk[0]], np.int32)
            for b, i in enumerate(chunk):
                n, k = counts[i].shape
                batch[:k, b, :n] = counts[i].T
                num_cols[b] = k
                depth[b] = fifo_depths[i]
            args = (
                multihost.put(batch, by_column_point),
                multihost.put(num_cols, by_point),
                multihost.put(depth, by_point),
            )
            cycles, busy = map(multihost.to_host, metrics.sweep_cycles(*args, history=history))
            yield (
                chunk,
                [cycles[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
                [busy[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
            )


def evaluate_cycles(counts, fifo_depths, **kwargs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """iter_cycles collected: (pe_cycles, pe_busy) lists in point order."""
    cycles, busy = [None] * len(counts), [None] * len(counts)
    for chunk, c, b in iter_cycles(counts, fifo_depths, **kwargs):
        for j, i in enumerate(chunk):
            cycles[i], busy[i] = c[j], b[j]
    return cycles, busy


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
