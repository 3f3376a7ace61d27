"""The relative-index sparse format that Deep Compression stores and EIE runs.

A nonzero weight is stored with the count of zeros before it in its column (its relative
index z, `index_bits` wide); a gap longer than 2**index_bits - 1 is bridged by padding
entries (zero weight, z = 2**index_bits - 1) that advance 2**index_bits positions (Deep
Compression Sec. 2; EIE ISCA 2016 Sec. III-B, where row r of W belongs to PE r mod N and
each PE keeps its own columns). Both the storage accounting (`compression.storage`) and
EIE's encoding (`eie.encode`) count entries with the functions here, so neither imports
the other.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

POINTER_BITS = 16  # EIE Sec. III-B: 16-bit column pointers


def expand_padding(gap, index_bits: int):
    """Each nonzero's padding entries followed by itself, in stream order (no Python loop).

    A nonzero after gap[i] zeros needs floor(gap / 2**index_bits) padding entries (zero
    weight, index 2**index_bits - 1, advancing 2**index_bits positions) and keeps the rest
    of the gap: Deep Compression Sec. 2 and EIE's per-PE streams (ISCA 2016, Sec. III-B).
    Returns (owner, step, is_real, z) per stored entry: the nonzero it belongs to, its
    position 0..pads in that nonzero's block, whether it is the nonzero, its index.
    """
    gap = np.asarray(gap)
    span = 1 << index_bits
    pads = gap >> index_bits
    per = pads + 1
    owner = np.repeat(np.arange(gap.size), per)
    step = np.arange(owner.size) - (np.cumsum(per) - per)[owner]
    is_real = step == pads[owner]
    z = np.where(is_real, (gap - pads * span)[owner], span - 1)
    return owner, step, is_real, z


def column_counts(codes, num_pes: int, index_bits: int, weight_bits: int = 4) -> np.ndarray:
    """(N, K) entries per PE and column, padding included, without building the streams.

    The same numbers as encode(...).counts at a fraction of the cost: what timing-only
    design-space sweeps need. codes: (M, K) integers in [0, 2**weight_bits), 0 = pruned;
    ValueError names anything else.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (M, K) array, got shape {codes.shape}")
    check_codes(codes, 1 << weight_bits)
    rows, cols = np.nonzero(codes)
    return entry_counts(rows, cols, codes.shape, num_pes, index_bits)[0]


def entry_counts(rows, cols, shape: tuple[int, int], num_pes: int, index_bits: int):
    """EIE's entries per PE and column, padding included: `encode(...).counts`.

    The count alone, without building the streams (ISCA 2016, Sec. III-B): row r goes to PE
    r mod N as local row r // N; a gap of g zero local rows before an entry of a PE's
    column costs floor(g / 2**index_bits) padding entries. rows, cols: the nonzeros of W in
    any order (np.nonzero). Returns (counts (N, K) int32, num_padding).
    """
    m, _ = shape
    key = np.sort(np.asarray(cols, np.int64) * m + np.asarray(rows, np.int64))
    cols, rows = np.divmod(key, m)
    return entry_counts_by_column(rows, cols, shape, [num_pes], index_bits)[0]


def entry_counts_by_column(rows, cols, shape: tuple[int, int], pe_counts, index_bits: int):
    """entry_counts for several PE counts from one pass over the nonzeros per PE count.

    rows, cols: the nonzeros of W in column-major order (by column, then row; e.g.
    `np.nonzero(W.T)` reversed). For each N, one stable radix sort by PE (8 or 16 bit keys)
    puts every (PE, column) slice's entries together in row order, so no comparison sort
    of all nonzeros is needed; each slice is then a run, whose length and padding give its
    count. The PE counts run on a thread per core (NumPy's sorts and gathers release the
    GIL). Returns [(counts (N, K) int32, num_padding)] per N.
    """
    m, k = shape
    rows = np.asarray(rows, np.int32 if m < 2**31 else np.int64)
    cols = np.asarray(cols, rows.dtype)
    return thread_map(lambda n: _slice_counts(rows, cols, shape, n, index_bits), pe_counts)


def thread_map(fn, items) -> list:
    """[fn(item) for item in items] on a thread per core (at most one per item): for NumPy
    work that releases the GIL (sorts, gathers, random draws)."""
    items = list(items)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(len(items), cores or 1)
    if workers < 2:
        return [fn(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _slice_counts(rows, cols, shape, n: int, index_bits: int):
    """(counts (N, K) int32, num_padding) of column-major nonzeros on n PEs."""
    m, k = shape
    pe = rows % n
    dtype = np.int32 if n * k < 2**31 else np.int64
    if -(-m // n) <= (1 << index_bits) or len(rows) == 0:  # no gap reaches 2**index_bits
        counts = np.bincount(pe.astype(dtype) * k + cols, minlength=n * k)
        return counts.reshape(n, k).astype(np.int32), 0
    key = pe.astype(np.uint8 if n <= 2**8 else np.uint16 if n <= 2**16 else np.int64)
    order = np.argsort(key, kind="stable")  # PE-major, then column, then row
    ids = pe[order].astype(dtype) * k + cols[order]  # slice of each entry, nondecreasing
    local = rows[order] // n
    first = np.empty(len(ids), bool)  # the first entry of its slice
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    gap = local.copy()  # zero local rows before each entry: from row 0, or from the previous
    gap[1:] -= np.where(first[1:], 0, local[:-1] + 1)
    pads = gap >> index_bits
    starts = np.flatnonzero(first)
    entries = np.diff(starts, append=len(ids)) + np.add.reduceat(pads, starts)
    counts = np.zeros(n * k, np.int32)
    counts[ids[starts]] = entries
    return counts.reshape(n, k), int(pads.sum())


def check_codes(codes: np.ndarray, codebook_size: int):
    """ValueError unless codes are integers in [0, codebook_size)."""
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes: expected integers in [0, {codebook_size}), got {codes.dtype}")
    if codes.size == 0:
        return
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= codebook_size:
        raise ValueError(
            f"codes: values must be in [0, 2**weight_bits) = [0, {codebook_size}), "
            f"got min {lo}, max {hi}"
        )
