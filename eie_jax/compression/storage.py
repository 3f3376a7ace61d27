"""Bit accounting of a compressed layer: Deep Compression Tables 2-3 and EIE's format.

Deep Compression (Han, Mao, Dally, ICLR 2016) stores a pruned, weight-shared layer as
  - the codebook: the 2**bits - 1 shared centroids at 32 bits (entry 0 is the constant
    zero of pruned weights and needs no storage);
  - per stored entry a `bits`-wide weight code and an `index_bits`-wide relative index;
  - biases at 32 bits;
and then Huffman-codes the stream of weight codes and the stream of relative indices
(Sec. 4). The compression rate is dense bits / compressed bits, with dense = 32 bits per
weight and bias (for n weights, no biases and no index: r = n*b / (n*log2(k) + k*b),
Sec. 3).

Relative indices (Sec. 2, Fig. 2): the matrix is stored column by column (CSC, the order
EIE reads it), flattened into one stream of M*K positions; an entry's index is the number
of zeros since the previous entry (or since the start). When a gap z exceeds
2**index_bits - 1, floor(z / 2**index_bits) filler entries are inserted, each a zero
weight (code 0) with index 2**index_bits - 1; each filler costs weight and index bits
like a real entry. This is the same padding rule as EIE's (ISCA 2016, Sec. III-B).

EIE format (ISCA 2016, Sec. III-B, III-C): row r of W belongs to PE r mod N; each PE keeps
its slice of every column as (v, z) entries with padding (counted by
`eie.column_counts`), 16-bit column pointers p[0..K] per PE, a 2**weight_bits-entry table
of 16-bit shared weights, and here biases at 16 bits (EIE's fixed-point width).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax.compression import huffman, sparse_format

FLOAT_BITS = 32  # dense weights, biases and Deep Compression's codebook entries
EIE_VALUE_BITS = 16  # EIE Sec. III-A: 16-bit fixed-point shared weights and biases


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One row of the storage table; all sizes in bits unless named otherwise.

    Deep Compression accounting (P = pruning, Q = quantisation/weight sharing,
    H = Huffman):
      num_weights: M*K; num_nonzero: kept weights (code != 0); weights_kept: their fraction.
      num_fillers: filler zeros inserted for gaps > 2**index_bits - 1;
      num_entries: num_nonzero + num_fillers, the length of both streams.
      weight_bits_pq = num_entries * bits / num_nonzero (bits per kept weight, fillers
        included); index_bits_pq = num_entries * index_bits / num_nonzero.
      weight_bits_pqh, index_bits_pqh: Huffman-coded stream sizes / num_nonzero (equal to
        the P+Q values when huffman=False).
      huffman_table_bits: the two canonical code-length tables (0 when huffman=False).
      codebook_bits = (2**bits - 1) * 32; bias_bits = num_biases * 32.
      total_bits_pq, total_bits_pqh: streams + codebook + biases (+ Huffman tables).
      dense_bits = 32 * (num_weights + num_biases).
      compression_rate_pq/pqh = dense_bits / total_bits_pq/pqh.
    EIE accounting:
      eie_entries (padding included), eie_padding, eie_pointer_bits = N*(K+1)*16,
      eie_codebook_bits = 2**eie_weight_bits * 16, eie_bias_bits = num_biases * 16,
      eie_bits = eie_entries * (eie_weight_bits + eie_index_bits) + pointers + codebook +
      biases; compression_rate_eie = dense_bits / eie_bits.
    Bits-per-weight fields are 0.0 for a layer without kept weights.
    """

    name: str
    shape: tuple[int, int]
    bits: int
    index_bits: int
    num_weights: int
    num_biases: int
    num_nonzero: int
    weights_kept: float
    num_fillers: int
    num_entries: int
    weight_bits_pq: float
    index_bits_pq: float
    weight_bits_pqh: float
    index_bits_pqh: float
    huffman_table_bits: int
    codebook_bits: int
    bias_bits: int
    total_bits_pq: int
    total_bits_pqh: int
    dense_bits: int
    compression_rate_pq: float
    compression_rate_pqh: float
    eie_num_pes: int
    eie_weight_bits: int
    eie_index_bits: int
    eie_entries: int
    eie_padding: int
    eie_pointer_bits: int
    eie_codebook_bits: int
    eie_bias_bits: int
    eie_bits: int
    compression_rate_eie: float

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["shape"] = list(self.shape)
        return out


def relative_indices(codes, index_bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The entry streams of Deep Compression's relative-index format (Sec. 2, Fig. 2).

    Args:
      codes: (M, K) integer codes, 0 = pruned; read column-major (CSC).
      index_bits: width of a relative index.
    Returns:
      (entry_codes, entry_indices, num_fillers): per stored entry, in stream order, its
      weight code (0 for fillers) and its relative index (zeros skipped before it).
    """
    flat = np.asarray(codes).reshape(-1, order="F")
    pos = np.flatnonzero(flat)
    if pos.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    gap = np.diff(pos, prepend=-1) - 1
    owner, _, is_real, z = sparse_format.expand_padding(gap, index_bits)
    entry_codes = np.where(is_real, flat[pos][owner], 0).astype(np.int64)
    return entry_codes, z.astype(np.int64), int(len(owner) - pos.size)


def layer_storage(
    name: str,
    codes,
    bits: int,
    index_bits: int,
    num_biases: int,
    *,
    huffman: bool = True,
    eie_num_pes: int = 64,
    eie_index_bits: int = 4,
    eie_weight_bits: int | None = None,
) -> LayerReport:
    """Storage of one compressed layer, Deep Compression style and in EIE's format.

    Args:
      name: layer name for the table.
      codes: (M, K) integer codes in EIE's layout, M outputs x K inputs (a conv kernel as
        (out, kh*kw*in), see layers.to_hardware); 0 = pruned, kept weights in
        [1, 2**bits). Streams run column-major (CSC).
      bits: weight-code width, 1..8 (codebook of 2**bits entries, entry 0 = 0.0).
      index_bits: Deep Compression's relative-index width (1..16).
      num_biases: biases stored beside the weights.
      huffman: also Huffman-code both streams (the P+Q+H columns).
      eie_num_pes, eie_index_bits: EIE's N and z width.
      eie_weight_bits: EIE's v width; default `bits` (4 on the chip).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (M, K) array, got shape {codes.shape}")
    _check_int("bits", bits, 1, 8)
    _check_int("index_bits", index_bits, 1, 16)
    _check_int("num_biases", num_biases, 0, None)
    _check_int("eie_num_pes", eie_num_pes, 1, None)
    _check_int("eie_index_bits", eie_index_bits, 1, 8)
    eie_weight_bits = bits if eie_weight_bits is None else eie_weight_bits
    _check_int("eie_weight_bits", eie_weight_bits, bits, 8)
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes: expected integers, got dtype {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << bits):
        raise ValueError(
            f"codes: values must be in [0, 2**bits) = [0, {1 << bits}) for bits={bits}, "
            f"got min {codes.min()}, max {codes.max()}"
        )

    m, k = codes.shape
    num_weights = m * k
    nnz = int(np.count_nonzero(codes))
    entry_codes, entry_index, num_fillers = relative_indices(codes, index_bits)
    entries = int(entry_codes.size)
    per_nz = 1.0 / nnz if nnz else 0.0
    codebook_bits = ((1 << bits) - 1) * FLOAT_BITS
    bias_bits = num_biases * FLOAT_BITS
    dense_bits = FLOAT_BITS * (num_weights + num_biases)
    stream_bits_pq = entries * (bits + index_bits)
    total_pq = stream_bits_pq + codebook_bits + bias_bits
    if huffman:
        hw = huffman_encode_size(entry_codes, 1 << bits)
        hi = huffman_encode_size(entry_index, 1 << index_bits)
        weight_h, index_h, table_bits = hw[0], hi[0], hw[1] + hi[1]
    else:
        weight_h, index_h, table_bits = entries * bits, entries * index_bits, 0
    total_pqh = weight_h + index_h + table_bits + codebook_bits + bias_bits

    eie_entries = _eie_entries(codes, eie_num_pes, eie_index_bits, eie_weight_bits)
    eie_pointer_bits = eie_num_pes * (k + 1) * sparse_format.POINTER_BITS
    eie_codebook_bits = (1 << eie_weight_bits) * EIE_VALUE_BITS
    eie_bias_bits = num_biases * EIE_VALUE_BITS
    eie_bits = (
        eie_entries * (eie_weight_bits + eie_index_bits)
        + eie_pointer_bits
        + eie_codebook_bits
        + eie_bias_bits
    )
    return LayerReport(
        name=name,
        shape=(m, k),
        bits=bits,
        index_bits=index_bits,
        num_weights=num_weights,
        num_biases=num_biases,
        num_nonzero=nnz,
        weights_kept=nnz / num_weights if num_weights else 0.0,
        num_fillers=num_fillers,
        num_entries=entries,
        weight_bits_pq=entries * bits * per_nz,
        index_bits_pq=entries * index_bits * per_nz,
        weight_bits_pqh=weight_h * per_nz,
        index_bits_pqh=index_h * per_nz,
        huffman_table_bits=table_bits,
        codebook_bits=codebook_bits,
        bias_bits=bias_bits,
        total_bits_pq=total_pq,
        total_bits_pqh=total_pqh,
        dense_bits=dense_bits,
        compression_rate_pq=dense_bits / total_pq,
        compression_rate_pqh=dense_bits / total_pqh,
        eie_num_pes=eie_num_pes,
        eie_weight_bits=eie_weight_bits,
        eie_index_bits=eie_index_bits,
        eie_entries=eie_entries,
        eie_padding=eie_entries - nnz,
        eie_pointer_bits=eie_pointer_bits,
        eie_codebook_bits=eie_codebook_bits,
        eie_bias_bits=eie_bias_bits,
        eie_bits=eie_bits,
        compression_rate_eie=dense_bits / eie_bits,
    )


def huffman_encode_size(symbols, alphabet_size: int) -> tuple[int, int]:
    """(coded bits, code-table bits) of a stream, from the real encoded bit stream."""
    symbols = np.asarray(symbols)
    if symbols.size == 0:
        return 0, 0
    encoded = huffman.encode(symbols, alphabet_size)
    return encoded.num_bits, encoded.table_bits


def _eie_entries(codes: np.ndarray, num_pes: int, index_bits: int, weight_bits: int) -> int:
    """Entries of EIE's per-PE streams, padding included (eie.column_counts)."""
    if codes.size == 0:
        return 0
    return int(sparse_format.column_counts(codes, num_pes, index_bits, weight_bits).sum())


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """A model's storage table: per-layer LayerReports and totals (Deep Compression Table 2)."""

    layers: tuple[LayerReport, ...]

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def num_weights(self) -> int:
        return sum(r.num_weights for r in self.layers)

    @property
    def num_nonzero(self) -> int:
        return sum(r.num_nonzero for r in self.layers)

    @property
    def weights_kept(self) -> float:
        return self.num_nonzero / self.num_weights if self.num_weights else 0.0

    @property
    def dense_bits(self) -> int:
        return sum(r.dense_bits for r in self.layers)

    @property
    def total_bits_pq(self) -> int:
        return sum(r.total_bits_pq for r in self.layers)

    @property
    def total_bits_pqh(self) -> int:
        return sum(r.total_bits_pqh for r in self.layers)

    @property
    def eie_bits(self) -> int:
        return sum(r.eie_bits for r in self.layers)

    @property
    def dense_bytes(self) -> float:
        return self.dense_bits / 8

    @property
    def compressed_bytes_pq(self) -> float:
        return self.total_bits_pq / 8

    @property
    def compressed_bytes(self) -> float:
        """P+Q+H size in bytes (Deep Compression's headline number)."""
        return self.total_bits_pqh / 8

    @property
    def eie_bytes(self) -> float:
        return self.eie_bits / 8

    @property
    def compression_ratio_pq(self) -> float:
        return self.dense_bits / self.total_bits_pq

    @property
    def compression_ratio_pqh(self) -> float:
        return self.dense_bits / self.total_bits_pqh

    @property
    def compression_ratio_eie(self) -> float:
        return self.dense_bits / self.eie_bits

    def _bits_per_nonzero(self, field: str) -> float:
        nnz = self.num_nonzero
        return sum(getattr(r, field) * r.num_nonzero for r in self.layers) / nnz if nnz else 0.0

    def to_markdown(self) -> str:
        """The table in the form of Deep Compression's Table 2, with a total row."""
        head = (
            "| layer | #weights | weights % (P) | weight bits (P+Q) | weight bits (P+Q+H) "
            "| index bits (P+Q) | index bits (P+Q+H) | compress rate (P+Q) "
            "| compress rate (P+Q+H) | EIE format |"
        )
        lines = [head, "|---" * 10 + "|"]
        for r in self.layers:
            lines.append(
                f"| {r.name} | {r.num_weights:,} | {100 * r.weights_kept:.1f} % "
                f"| {r.weight_bits_pq:.2f} | {r.weight_bits_pqh:.2f} | {r.index_bits_pq:.2f} "
                f"| {r.index_bits_pqh:.2f} | {100 / r.compression_rate_pq:.2f} % "
                f"| {100 / r.compression_rate_pqh:.2f} % | {r.compression_rate_eie:.1f}x |"
            )
        lines.append(
            f"| total | {self.num_weights:,} | {100 * self.weights_kept:.1f} % "
            f"| {self._bits_per_nonzero('weight_bits_pq'):.2f} "
            f"| {self._bits_per_nonzero('weight_bits_pqh'):.2f} "
            f"| {self._bits_per_nonzero('index_bits_pq'):.2f} "
            f"| {self._bits_per_nonzero('index_bits_pqh'):.2f} "
            f"| {100 / self.compression_ratio_pq:.2f} % ({self.compression_ratio_pq:.1f}x) "
            f"| {100 / self.compression_ratio_pqh:.2f} % ({self.compression_ratio_pqh:.1f}x) "
            f"| {self.compression_ratio_eie:.1f}x |"
        )
        lines.append("")
        lines.append(
            f"Dense {self.dense_bytes / 1024:.1f} KB -> P+Q {self.compressed_bytes_pq / 1024:.1f}"
            f" KB, P+Q+H {self.compressed_bytes / 1024:.1f} KB, EIE format "
            f"{self.eie_bytes / 1024:.1f} KB. Compress rate = compressed / dense size, as in "
            "Deep Compression Table 2."
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: per-layer rows and totals."""
        return dict(
            layers=[r.to_dict() for r in self.layers],
            num_weights=self.num_weights,
            num_nonzero=self.num_nonzero,
            weights_kept=self.weights_kept,
            dense_bytes=self.dense_bytes,
            compressed_bytes_pq=self.compressed_bytes_pq,
            compressed_bytes_pqh=self.compressed_bytes,
            eie_bytes=self.eie_bytes,
            compression_ratio_pq=self.compression_ratio_pq,
            compression_ratio_pqh=self.compression_ratio_pqh,
            compression_ratio_eie=self.compression_ratio_eie,
        )


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}={value!r}: must be an int")
    if value < lo or (hi is not None and value > hi):
        allowed = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value}: must be in {allowed}")
