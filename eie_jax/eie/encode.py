"""EIE's storage format: interleaved compressed sparse columns per PE (ISCA 2016, Sec. III-B).

Row r of W (M x K) belongs to PE r mod N as local row r // N. Each PE stores, column by
column, entries (v, z): v is the codebook index, z the number of zero local rows since
the previous entry of that column (or since local row 0). A gap longer than
2**index_bits - 1 is bridged by padding entries (v = 0, z = 2**index_bits - 1), each of
which advances the row by 2**index_bits and costs a cycle like a real entry. Per-PE column
pointers p give p[j+1] - p[j] = entries of column j, padding included.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression import sparse_format
from eie_jax.compression.sparse_format import check_codes
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
    owner, step, real, s_z = sparse_format.expand_padding(gap, cfg.index_bits)
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
    check_codes(codes, cfg.codebook_size)
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
