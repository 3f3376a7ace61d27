"""Many EIE design points in one compiled shape: chunk by length, shard the batch.

Each point is its entries per PE in each broadcast column (N_i, K_i) and a FIFO depth;
points are chunked by K, every chunk padded to one shape and evaluated by
`eie.metrics.batched_cycles_by_step` (step-major counts; rtl points by
`batched_rtl_cycles`), the batch axis sharded over the devices with a jax.sharding Mesh:
every process's devices under jax.distributed (each process puts its own shards; the
results are gathered to every process).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from eie_jax import eie
from eie_jax.eie import metrics
from eie_jax.sweep import multihost


@dataclasses.dataclass(frozen=True)
class RtlInputs:
    """What the rtl timing needs of a point beside its counts (`eie.rtl_cycles_from_counts`).

    columns (K_i,): the layer column of each of counts' broadcast columns; bias_counts
    (N_i,): the bias item's entries per PE (zeros: no bias); bias_col: the bias item's
    column, `eie.bias_column(K, N)` for the layer's K.
    """

    columns: np.ndarray
    bias_counts: np.ndarray
    bias_col: int


# A call evaluates at most CHUNK_POINTS points, of broadcast counts within LENGTH_RATIO.
CHUNK_POINTS = 32
LENGTH_RATIO = 2


def iter_cycles(
    counts: Sequence[np.ndarray],
    fifo_depths: Sequence[int],
    *,
    rtl: Sequence[RtlInputs | None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    max_batch_elements: int = 1 << 25,
) -> Iterator[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
    """Per-PE cycles of many design points: chunks of one padded shape, one compilation.

    counts[i] (N_i, K_i) holds design point i's entries per PE in each *broadcast* column;
    fifo_depths[i] its queue depth; rtl[i] (optional) the extra inputs of the rtl timing
    (`RtlInputs`), None for the paper timing. Points are chunked by timing and increasing K
    (`_chunks_by_length`) and every chunk is padded to the largest N, K and chunk size, the
    batch axis sharded over `devices` (default: jax.devices(), every process's).
    Zero-count PEs added by padding finish no later than the real ones, so they change
    neither the broadcast stalls nor the maximum (rtl: they pop no later than a real PE).
    Yields (indices, pe_cycles, pe_busy) per chunk, each array trimmed to the point's N.
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
    rtl = list(rtl) if rtl is not None else [None] * len(counts)
    for timing in ("paper", "rtl"):
        group = [i for i in range(len(counts)) if (rtl[i] is None) == (timing == "paper")]
        for part in _chunks_by_length([counts[i].shape[1] for i in group], per_chunk):
            chunk = [group[j] for j in part]
            # Batch padding repeats a real point's depth (and rtl inputs); its results
            # are dropped.
            fill = [chunk[0]] * (per_chunk - len(chunk))
            num_cols = np.asarray([counts[i].shape[1] for i in chunk + fill], np.int32)
            depth = np.asarray([fifo_depths[i] for i in chunk + fill], np.int32)
            if timing == "rtl":
                batch = np.zeros((per_chunk, n_pad, k_pad), np.int32)
                for b, i in enumerate(chunk):
                    n, k = counts[i].shape
                    batch[b, :n, :k] = counts[i]
                # Columns past a point's own K are not broadcast, so they change nothing.
                active = np.arange(k_pad)[None, :] < num_cols[:, None]
                args = [batch, active, depth]
                args += _rtl_args([rtl[i] for i in chunk + fill], chunk, counts, n_pad, k_pad)
                run = metrics.batched_rtl_cycles
                shardings = [sharding] * len(args)
            else:  # step-major, so the lockstep loop reads contiguous slices
                batch = np.zeros((k_pad, per_chunk, n_pad), np.int32)
                for b, i in enumerate(chunk):
                    n, k = counts[i].shape
                    batch[:k, b, :n] = counts[i].T
                args = [batch, num_cols, depth]
                run = metrics.batched_cycles_by_step
                shardings = [NamedSharding(mesh, PartitionSpec(None, "points"))] + [sharding] * 2
            args = [multihost.put(a, sh) for a, sh in zip(args, shardings, strict=True)]
            cycles, busy = map(multihost.to_host, run(*args, history=history))
            yield (
                chunk,
                [cycles[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
                [busy[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
            )


def _rtl_args(inputs: Sequence[RtlInputs], chunk, counts, n_pad: int, k_pad: int) -> list:
    """columns, bias_counts, bias_col and num_pes of a chunk, padded as the counts are."""
    columns = np.zeros((len(inputs), k_pad), np.int32)
    bias_counts = np.zeros((len(inputs), n_pad), np.int32)
    for b, r in enumerate(inputs):
        columns[b, : len(r.columns)] = r.columns
        bias_counts[b, : len(r.bias_counts)] = r.bias_counts
    num_pes = [counts[i].shape[0] for i in chunk]
    num_pes += [num_pes[0]] * (len(inputs) - len(chunk))
    return [
        columns,
        bias_counts,
        np.asarray([r.bias_col for r in inputs], np.int32),
        np.asarray(num_pes, np.int32),
    ]


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
