"""Many EIE design points in a few compiled calls: pack or chunk them, shard the batch.

Each point is its entries per PE in each broadcast column (N_i, K_i) and a FIFO depth.
Paper timing: the points are packed on tracks, one after another, and evaluated by
`eie.packed_cycles` (one loop over the longest point's broadcasts, one compilation per
sweep). rtl timing: chunks by K, every chunk padded to one shape, `batched_rtl_cycles`
(vmapped). The tracks (or the batch) are sharded over the devices with a
jax.sharding Mesh: every process's devices under jax.distributed (each process puts its
own shards; the results are gathered to every process).
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


# An rtl call evaluates at most CHUNK_POINTS points, of broadcast counts within LENGTH_RATIO.
CHUNK_POINTS = 32
LENGTH_RATIO = 2
# Paper timing (packed): the padding lanes a merge of two PE counts' groups may add.
MERGE_LANES = 512


def iter_cycles(
    counts: Sequence[np.ndarray],
    fifo_depths: Sequence[int],
    *,
    rtl: Sequence[RtlInputs | None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    max_batch_elements: int = 1 << 25,
) -> Iterator[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
    """Per-PE cycles of many design points, chunk by chunk.

    counts[i] (N_i, K_i) holds design point i's entries per PE in each *broadcast* column;
    fifo_depths[i] its queue depth; rtl[i] (optional) the extra inputs of the rtl timing
    (`RtlInputs`), None for the paper timing. Paper points are packed on tracks
    (`_packed_chunks`), rtl points chunked by increasing K (`_rtl_chunks`), the tracks or
    the batch sharded over `devices` (default: jax.devices(), every process's).
    Zero-count PEs added by padding finish no later than the real ones, so they change
    neither the broadcast stalls nor the maximum (rtl: they pop no later than a real PE).
    Yields (indices, pe_cycles, pe_busy) per chunk, each array trimmed to the point's N.
    """
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("points",))
    if not counts:
        return
    history = eie.history_size(max(fifo_depths))
    rtl = list(rtl) if rtl is not None else [None] * len(counts)
    paper = [i for i in range(len(counts)) if rtl[i] is None]
    yield from _packed_chunks(counts, fifo_depths, paper, mesh, history, max_batch_elements)
    rtl_points = [i for i in range(len(counts)) if rtl[i] is not None]
    if rtl_points:
        yield from _rtl_chunks(
            counts, fifo_depths, rtl, rtl_points, mesh, history, max_batch_elements
        )


def _packed_chunks(counts, fifo_depths, points, mesh, history, max_batch_elements):
    """Paper-timing points packed on tracks (`eie.timing.packed_cycles`): one compilation.

    The points are grouped by N (`_pe_groups`) and, in each group, placed one after
    another on tracks as long as the longest point (`_tracks`), so the loop runs max K
    steps over about the points' own PEs and columns, where padding every point to the
    largest N and K ran up to ten times as many. Chunks: as few as max_batch_elements
    allows (a chunk over it is split in two).
    """
    ndev = mesh.devices.size
    idle = [i for i in points if counts[i].shape[1] == 0]  # nothing broadcast: no cycles
    if idle:
        zeros = [np.zeros(counts[i].shape[0], np.int32) for i in idle]
        yield idle, zeros, zeros
    busy = sorted((i for i in points if counts[i].shape[1]), key=lambda i: -counts[i].shape[1])
    pending = [busy] if busy else []
    while pending:
        chunk = pending.pop(0)
        steps = counts[chunk[0]].shape[1]
        groups = _pe_groups(counts, chunk, steps)
        size = sum(steps * _round_up(len(tracks), ndev) * n for n, tracks, _ in groups)
        if size > max_batch_elements and len(chunk) > 1:
            pending[:0] = [chunk[::2], chunk[1::2]]  # each half keeps long and short points
            continue
        yield _run_packed(counts, fifo_depths, groups, steps, mesh, history)


def _run_packed(counts, fifo_depths, groups, steps, mesh, history):
    """packed_cycles of one chunk: (indices, pe_cycles, pe_busy) of its points."""
    by_lane = NamedSharding(mesh, PartitionSpec(None, None, "points"))
    by_step = NamedSharding(mesh, PartitionSpec(None, "points"))
    replicated = NamedSharding(mesh, PartitionSpec())
    ndev = mesh.devices.size
    inputs, where = [], []
    # Points often share their counts (one layer at several FIFO depths): once per array.
    shared = {id(counts[i]): counts[i] for _, _, members in groups for i in members}
    tops = {key: int(c.max(initial=0)) for key, c in shared.items()}
    busy = {key: c.sum(axis=1, dtype=np.int32) for key, c in shared.items()}
    for g, (n, tracks, members) in enumerate(groups):
        width = _round_up(len(tracks), ndev)  # padding tracks hold no point
        top = max(tops[id(counts[i])] for i in members)
        dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.int32
        batch = multihost.host_zeros((steps, n, width), dtype)
        depth = multihost.host_zeros((steps, width), np.int32)
        depth[...] = 1
        first = multihost.host_zeros((steps, width), bool)
        last = []
        for t, track in enumerate(tracks):
            offset = 0
            for j in track:
                i = members[j]
                pes, k = counts[i].shape
                batch[offset : offset + k, :pes, t] = counts[i].T
                depth[offset : offset + k, t] = fifo_depths[i]
                first[offset, t] = True
                offset += k
                last.append((i, t, offset - 1))
        ends = np.unique([end for _, _, end in last]).astype(np.int32)
        where += [(i, g, t, int(np.searchsorted(ends, end))) for i, t, end in last]
        arrays = [(batch, by_lane), (depth, by_step), (first, by_step), (ends, replicated)]
        inputs.append(eie.Track(*(multihost.put(a, sharding) for a, sharding in arrays)))
    run = eie.packed_cycles(tuple(inputs), history=history)
    out = [multihost.to_host(o) for o in run]
    indices = [i for i, *_ in where]
    cycles = [out[g][e, : counts[i].shape[0], t] for i, g, t, e in where]
    return indices, cycles, [busy[id(counts[i])] for i in indices]


def _pe_groups(counts, points, steps) -> list[tuple[int, list[list[int]], list[int]]]:
    """[(N, tracks, points)]: the points by PE count, each group's on its `_tracks`; a
    group merged into the next larger N (its PEs padded with zeros) while that pads at
    most MERGE_LANES lanes: a group costs the loop a few microseconds a step, a lane about
    a nanosecond."""
    by_n: dict[int, list[int]] = {}
    for i in points:
        by_n.setdefault(counts[i].shape[0], []).append(i)

    def group(n, members):
        return n, _tracks([counts[i].shape[1] for i in members], steps), members

    groups: list[tuple[int, list[list[int]], list[int]]] = []
    for n in sorted(by_n):
        if groups:
            below, tracks, members = groups[-1]
            if len(tracks) * (n - below) <= MERGE_LANES:
                groups[-1] = group(n, members + by_n[n])
                continue
        groups.append(group(n, by_n[n]))
    return groups


def _tracks(lengths: Sequence[int], steps: int) -> list[list[int]]:
    """Indices into lengths placed on tracks of `steps` steps: first fit, longest first."""
    tracks: list[list[int]] = []
    free: list[int] = []
    for j in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        t = next((t for t, room in enumerate(free) if room >= lengths[j]), len(tracks))
        if t == len(tracks):
            tracks.append([])
            free.append(steps)
        tracks[t].append(j)
        free[t] -= lengths[j]
    return tracks


def _rtl_chunks(counts, fifo_depths, rtl, points, mesh, history, max_batch_elements):
    """rtl points (`metrics.batched_rtl_cycles`, vmapped): chunks of at most CHUNK_POINTS,
    all padded to one shape, so one compilation."""
    sharding = NamedSharding(mesh, PartitionSpec("points"))
    ndev = mesh.devices.size
    # One shape for every chunk (one compilation): the largest N, the largest K rounded up.
    n_pad = max(counts[i].shape[0] for i in points)
    k_pad = max(_round_up(max(counts[i].shape[1] for i in points), 128), 128)
    per_chunk = max(1, min(max_batch_elements // (n_pad * k_pad), CHUNK_POINTS, len(points)))
    per_chunk = _round_up(per_chunk, ndev)
    for part in _chunks_by_length([counts[i].shape[1] for i in points], per_chunk):
        chunk = [points[j] for j in part]
        # Batch padding repeats a real point's depth and rtl inputs; its results are dropped.
        fill = [chunk[0]] * (per_chunk - len(chunk))
        num_cols = np.asarray([counts[i].shape[1] for i in chunk + fill], np.int32)
        batch = np.zeros((per_chunk, n_pad, k_pad), np.int32)
        for b, i in enumerate(chunk):
            n, k = counts[i].shape
            batch[b, :n, :k] = counts[i]
        # Columns past a point's own K are not broadcast, so they change nothing.
        active = np.arange(k_pad)[None, :] < num_cols[:, None]
        depth = np.asarray([fifo_depths[i] for i in chunk + fill], np.int32)
        args = [batch, active, depth]
        args += _rtl_args([rtl[i] for i in chunk + fill], chunk, counts, n_pad, k_pad)
        args = [multihost.put(a, sharding) for a in args]
        cycles, busy = map(multihost.to_host, metrics.batched_rtl_cycles(*args, history=history))
        yield (  # each point's rows trimmed to its own N
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
