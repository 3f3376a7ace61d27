"""EIE's storage format: interleaved compressed sparse columns per PE (ISCA 2016, Sec. III-B).

Row r of W (M x K) belongs to PE r mod N as local row r // N. Each PE stores, column by
column, entries (v, z): v is the codebook index, z the number of zero local rows since
the previous entry of that column (or since local row 0). A gap longer than
2**index_bits - 1 is bridged by padding entries (v = 0, z = 2**index_bits - 1), each of
which advances the row by 2**index_bits and costs a cycle like a real entry. Per-PE column
pointers p give p[j+1] - p[j] = entries of column j, padding included.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax import storage
from eie_jax.eie import memory
from eie_jax.eie.config import EIEConfig


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "codes",
        "z",
        "colptr",
        "slice_codes",
        "slice_rows",
        "counts",
        "codebook",
        "num_entries",
        "num_padding",
        "spmat_bytes",
        "ptr_bytes",
        "act_bytes",
    ],
    meta_fields=["shape", "num_pes", "index_bits", "weight_bits"],
)
@dataclasses.dataclass(frozen=True)
class EncodedLayer:
    """One layer in EIE's per-PE format.

    The SRAM contents, as NumPy arrays on the host:
      codes: (N, L) codebook indices v of each PE's entry stream (0 for padding), L the
        longest stream; shorter streams end in zeros.
      z: (N, L) relative row indices.
      colptr: (N, K + 1) column pointers.
    What the simulator reads, on the device: the slice of column j in each PE's stream,
    padded to W = the most entries any PE has in one column (EIE reads its 64-bit SRAM
    rows 8 entries at a time for the same reason: a column's slice is contiguous):
      slice_codes: (K, N, W) v of entries [p[j], p[j+1]); 0 past the end.
      slice_rows: (K, N, W) the local row each entry updates, decoded from the z's (the
        PE's row counter); past the end, R = rows per PE, a scratch row.
      counts: (N, K) entries per PE and column, padding included (p[j+1] - p[j]).
      codebook: (2**weight_bits,) float shared weights, codebook[0] == 0.
    num_entries, num_padding: totals over PEs and columns; num_entries includes padding.
    spmat_bytes, ptr_bytes, act_bytes: (N,) bytes each PE needs in its sparse-matrix,
      pointer and activation SRAMs (memory.sram_bytes).
    """

    codes: np.ndarray
    z: np.ndarray
    colptr: np.ndarray
    slice_codes: jax.Array
    slice_rows: jax.Array
    counts: jax.Array
    codebook: jax.Array
    num_entries: int
    num_padding: int
    spmat_bytes: np.ndarray
    ptr_bytes: np.ndarray
    act_bytes: np.ndarray
    shape: tuple[int, int]
    num_pes: int
    index_bits: int
    weight_bits: int

    @property
    def rows_per_pe(self) -> int:
        return -(-self.shape[0] // self.num_pes)

    @property
    def window(self) -> int:
        return self.slice_codes.shape[2]

    def with_codebook(self, codebook) -> EncodedLayer:
        """The same sparsity pattern with new shared-weight values (e.g. to differentiate)."""
        return dataclasses.replace(self, codebook=codebook)

    @property
    def slices(self) -> ColumnSlices:
        """The device arrays the simulator reads (the host SRAM arrays stay behind)."""
        return ColumnSlices(
            self.slice_codes, self.slice_rows, self.counts, self.codebook, self.shape, self.num_pes
        )


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["codes", "rows", "counts", "codebook"],
    meta_fields=["shape", "num_pes"],
)
@dataclasses.dataclass(frozen=True)
class ColumnSlices:
    """EncodedLayer's device arrays: what crosses into the jit-compiled simulator."""

    codes: jax.Array  # (K, N, W)
    rows: jax.Array  # (K, N, W)
    counts: jax.Array  # (N, K)
    codebook: jax.Array
    shape: tuple[int, int]
    num_pes: int

    @property
    def rows_per_pe(self) -> int:
        return -(-self.shape[0] // self.num_pes)


def encode(codes, codebook, cfg: EIEConfig, *, min_window: int = 0) -> EncodedLayer:
    """Encodes integer codes (M, K), 0 = pruned, into EIE's per-PE format on the host.

    min_window pads the per-column slices to a common width, so that layers of one
    padded shape share a compiled simulator.
    """
    codes, codebook = _validate(codes, codebook, cfg)
    m, k = codes.shape
    n = cfg.num_pes
    r = -(-m // n)
    nz = _nonzeros_in_sram_order(codes, n, cfg.index_bits)
    group, row, prev, gap, pads, code = nz.group, nz.row, nz.prev, nz.gap, nz.pads, nz.code
    span = 1 << cfg.index_bits

    # Expand each nonzero into its padding entries followed by itself.
    owner, step, real, s_z = storage.expand_padding(gap, cfg.index_bits)
    s_group = group[owner]
    s_row = np.where(real, row[owner], prev[owner] + span * (step + 1))
    s_code = np.where(real, code[owner], 0)

    counts = np.bincount(s_group, minlength=n * k).reshape(n, k)
    colptr = np.zeros((n, k + 1), np.int64)
    np.cumsum(counts, axis=1, out=colptr[:, 1:])
    s_pe, s_col = np.divmod(s_group, k)
    slot = np.arange(len(s_group)) - (np.cumsum(colptr[:, -1]) - colptr[:, -1])[s_pe]
    length = max(int(colptr[:, -1].max()), 1)
    stream_codes = np.zeros((n, length), np.uint8)
    stream_z = np.zeros((n, length), np.uint8)
    stream_codes.reshape(-1)[s_pe * length + slot] = s_code
    stream_z.reshape(-1)[s_pe * length + slot] = s_z

    window = max(int(counts.max()), min_window, 1)
    in_col = slot - colptr[s_pe, s_col]
    at = (s_col * n + s_pe) * window + in_col
    sram = memory.sram_bytes(colptr[:, -1], (m, k), n, cfg.weight_bits + cfg.index_bits)
    row_dtype = np.int16 if r < 2**15 - 1 else np.int32
    slice_codes = np.zeros((k, n, window), np.uint8)
    slice_rows = np.full((k, n, window), r, row_dtype)
    slice_codes.reshape(-1)[at] = s_code
    slice_rows.reshape(-1)[at] = s_row
    return EncodedLayer(
        codes=stream_codes,
        z=stream_z,
        colptr=colptr.astype(np.int32),
        slice_codes=jnp.asarray(slice_codes),
        slice_rows=jnp.asarray(slice_rows),
        counts=jnp.asarray(counts, jnp.int32),
        codebook=jnp.asarray(codebook),
        num_entries=len(s_group),
        num_padding=int(pads.sum()),
        spmat_bytes=sram["spmat"],
        ptr_bytes=sram["ptr"],
        act_bytes=sram["act"],
        shape=(m, k),
        num_pes=n,
        index_bits=cfg.index_bits,
        weight_bits=cfg.weight_bits,
    )


def column_counts(codes, num_pes: int, index_bits: int, weight_bits: int = 4) -> np.ndarray:
    """(N, K) entries per PE and column, padding included, without building the streams.

    The same numbers as encode(...).counts at a fraction of the cost: what timing-only
    design-space sweeps need. codes: (M, K) integers in [0, 2**weight_bits), 0 = pruned;
    ValueError names anything else.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (M, K) array, got shape {codes.shape}")
    _check_codes(codes, 1 << weight_bits)
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


@dataclasses.dataclass(frozen=True)
class _Nonzeros:
    """Every nonzero weight, in SRAM order, with its gap and padding count."""

    group: np.ndarray  # pe * K + column
    row: np.ndarray  # local row within the PE
    prev: np.ndarray  # local row of the previous nonzero in the same PE column, or -1
    gap: np.ndarray  # zero rows in between: row - prev - 1
    pads: np.ndarray  # padding entries needed: floor(gap / 2**index_bits)
    code: np.ndarray


def _nonzeros_in_sram_order(codes: np.ndarray, num_pes: int, index_bits: int) -> _Nonzeros:
    m, k = codes.shape
    r = -(-m // num_pes)
    # (R * N, K) -> (N, K, R): flat nonzero positions then run PE-major, column-major,
    # row-minor, which is exactly the order entries sit in a PE's SRAM.
    padded = np.zeros((r * num_pes, k), np.uint8)
    padded[:m] = codes
    per_pe = padded.reshape(r, num_pes, k).transpose(1, 2, 0).ravel()
    flat = np.flatnonzero(per_pe)
    group, row = np.divmod(flat, r)
    prev = np.empty_like(row)
    prev[0:1] = -1
    prev[1:] = np.where(group[1:] == group[:-1], row[:-1], -1)
    gap = row - prev - 1
    return _Nonzeros(group, row, prev, gap, gap >> index_bits, per_pe[flat])


def _validate(codes, codebook, cfg: EIEConfig):
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0:
        raise ValueError(f"codes: expected a non-empty 2-D (M, K) array, got shape {codes.shape}")
    _check_codes(codes, cfg.codebook_size)
    codebook = np.asarray(codebook, np.float32)
    if codebook.shape != (cfg.codebook_size,):
        raise ValueError(
            f"codebook: expected shape ({cfg.codebook_size},) for weight_bits="
            f"{cfg.weight_bits}, got {codebook.shape}"
        )
    if codebook[0] != 0:
        raise ValueError(f"codebook: codebook[0] must be 0 (the pruned weight), got {codebook[0]}")
    check_finite("codebook", codebook)
    return codes, codebook


def check_finite(name: str, value) -> None:
    """ValueError naming `name` and the first bad index if `value` holds NaN or inf.

    EIE's 16-bit fixed point has neither: quantising would silently turn NaN into 0 and
    inf into the saturated maximum. Traced values (under a caller's jit) are not checked.
    """
    if value is None or isinstance(value, jax.core.Tracer):
        return
    bad = ~np.isfinite(np.asarray(value, np.float64))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        first = np.asarray(value)[index] if index else np.asarray(value)
        raise ValueError(f"{name}: {first} at index {list(index)}; allowed: finite numbers only")


def _check_codes(codes: np.ndarray, codebook_size: int):
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
