"""Many EIE design points in one compiled shape: chunk by length, shard the batch.

Each point is its entries per PE in each broadcast column (N_i, K_i) and a FIFO depth;
points are chunked by K, every chunk padded to one shape and evaluated by
`eie.metrics.batched_cycles`, the batch axis sharded over the devices with a
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

# A call evaluates at most CHUNK_POINTS points, of broadcast counts within LENGTH_RATIO.
CHUNK_POINTS = 32
LENGTH_RATIO = 2


def iter_cycles(
    counts: Sequence[np.ndarray],
    fifo_depths: Sequence[int],
    *,
    devices: Sequence[jax.Device] | None = None,
    max_batch_elements: int = 1 << 25,
) -> Iterator[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
    """Per-PE cycles of many design points: chunks of one padded shape, one compilation.

    counts[i] (N_i, K_i) holds design point i's entries per PE in each *broadcast* column;
    fifo_depths[i] its queue depth. Points are chunked by increasing K (`_chunks_by_length`)
    and every chunk is padded to the largest N, K and chunk size, the batch axis sharded
    over `devices` (default: jax.devices(), every process's).
    Zero-count PEs added by padding finish no later than the real ones, so they change
    neither the broadcast stalls nor the maximum. Yields (indices, pe_cycles, pe_busy) per
    chunk, each array trimmed to the point's N.
    """
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("points",))
    sharding = NamedSharding(mesh, PartitionSpec("points"))
    ndev = len(devices)
    if not counts:
        return
    # One shape for every call, so one compilation per sweep (each costs about a second on
    # CPU): the loop's trip count is traced, so padding K costs no steps, only memory.
    n_pad = max(c.shape[0] for c in counts)
    k_pad = max(_round_up(max(c.shape[1] for c in counts), 128), 128)
    history = eie.history_size(max(fifo_depths))
    per_chunk = max(1, min(max_batch_elements // (n_pad * k_pad), CHUNK_POINTS, len(counts)))
    per_chunk = _round_up(per_chunk, ndev)
    for chunk in _chunks_by_length([c.shape[1] for c in counts], per_chunk):
        batch = np.zeros((per_chunk, n_pad, k_pad), np.int32)
        num_cols = np.zeros(per_chunk, np.int32)
        # Batch padding repeats a real depth; its results are dropped.
        depth = np.full(per_chunk, fifo_depths[chunk[0]], np.int32)
        for b, i in enumerate(chunk):
            n, k = counts[i].shape
            batch[b, :n, :k] = counts[i]
            num_cols[b] = k
            depth[b] = fifo_depths[i]
        # Columns past a point's own K are not broadcast, so they change nothing.
        active = np.arange(k_pad)[None, :] < num_cols[:, None]
        args = [multihost.put(a, sharding) for a in (batch, active, depth)]
        cycles, busy = map(multihost.to_host, metrics.batched_cycles(*args, history=history))
        yield (
            chunk,
            [cycles[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
            [busy[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
        )


def _chunks_by_length(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Point indices in chunks of at most `size`, by increasing length, each chunk's
    longest at most LENGTH_RATIO times its shortest (a chunk runs as long as its longest)."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        first = lengths[chunks[-1][0]] if chunks else 0
        if not chunks or len(chunks[-1]) == size or lengths[i] > LENGTH_RATIO * max(first, 64):
            chunks.append([])
        chunks[-1].append(i)
    return chunks


def evaluate_cycles(counts, fifo_depths, **kwargs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """iter_cycles collected: (pe_cycles, pe_busy) lists in point order."""
    cycles, busy = [None] * len(counts), [None] * len(counts)
    for chunk, c, b in iter_cycles(counts, fifo_depths, **kwargs):
        for j, i in enumerate(chunk):
            cycles[i], busy[i] = c[j], b[j]
    return cycles, busy


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
