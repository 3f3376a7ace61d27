"""Canonical Huffman coding of small-alphabet integer streams (Deep Compression Sec. 4).

Deep Compression Huffman-codes the quantised weight codes and the relative (difference)
indices of each layer; the skewed distributions of both save 20-30 % of storage (Han,
Mao, Dally, ICLR 2016, Sec. 4 and Fig. 5). This module is the real coder: `encode`
produces the packed bit stream whose length the storage report counts, and `decode`
recovers the symbols exactly.

Codes are canonical (as in DEFLATE, RFC 1951 Sec. 3.2.2): symbols sorted by
(code length, symbol) get consecutive code values, so the table of code lengths alone
describes the code. Bits are packed most significant bit first, codes written MSB first.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np

# Codes are held in uint64 words while packing and decoding.
_MAX_CODE_LENGTH = 63


@dataclasses.dataclass(frozen=True)
class HuffmanEncoded:
    """A canonical-Huffman-coded symbol stream.

    Attributes:
      bits: the packed bit stream, np.uint8, MSB first; the last byte is zero-padded.
      num_bits: number of meaningful bits in `bits` (the coded size).
      lengths: (alphabet_size,) int32 code length per symbol, 0 for unused symbols; this
        table alone defines the canonical code.
      num_symbols: number of symbols coded (needed because the padding bits of the last
        byte could otherwise decode to spurious symbols).
    """

    bits: np.ndarray
    num_bits: int
    lengths: np.ndarray
    num_symbols: int

    @property
    def alphabet_size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def table_bits(self) -> int:
        """Bits to store the code-length table: one byte per symbol of the alphabet."""
        return 8 * self.alphabet_size


def code_lengths(counts) -> np.ndarray:
    """Optimal (Huffman 1952) code length per symbol from symbol counts.

    The two least frequent subtrees are merged until one tree remains; a symbol's code
    length is its leaf depth. Ties are broken by creation order, so the result is
    deterministic. Unused symbols (count 0) get length 0; a single used symbol gets
    length 1 (a code needs at least one bit per symbol to have a length).

    Args:
      counts: (A,) non-negative integer counts.
    Returns:
      (A,) int32 code lengths l with sum(2**-l over used symbols) == 1 (Kraft equality)
      whenever two or more symbols are used.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"counts: expected a 1-D array, got shape {counts.shape}")
    if counts.size and (not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0):
        raise ValueError(f"counts: expected non-negative integers, got dtype {counts.dtype}")
    lengths = np.zeros(counts.shape[0], np.int32)
    used = np.flatnonzero(counts)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    # The alphabet is small (codebook indices, relative indices), so a heap over it is
    # cheap; the per-symbol work on the data itself is the vectorised bincount upstream.
    parent = np.full(2 * used.size - 1, -1, np.int64)
    heap = [(int(counts[s]), i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    next_node = used.size
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = next_node
        heapq.heappush(heap, (c1 + c2, next_node))
        next_node += 1
    # Parents are created after their children, so one reverse sweep gives all depths.
    depth = np.zeros(parent.shape[0], np.int64)
    for node in range(parent.shape[0] - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    lengths[used] = depth[: used.size]
    return lengths


def canonical_codes(lengths) -> np.ndarray:
    """Canonical code values for a table of code lengths (RFC 1951 Sec. 3.2.2).

    With used symbols sorted by (length, symbol), code[0] = 0 and
    code[i] = (code[i-1] + 1) << (length[i] - length[i-1]).

    Args:
      lengths: (A,) non-negative code lengths, 0 = unused, satisfying Kraft's inequality
        sum(2**-l) <= 1.
    Returns:
      (A,) uint64 code values (the low `length` bits are the code, MSB first); 0 for
      unused symbols.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths: expected a 1-D array, got shape {lengths.shape}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > _MAX_CODE_LENGTH):
        raise ValueError(
            f"lengths: values must be in [0, {_MAX_CODE_LENGTH}], "
            f"got min {lengths.min()}, max {lengths.max()}"
        )
    lengths = lengths.astype(np.int64)
    codes = np.zeros(lengths.shape[0], np.uint64)
    used = np.flatnonzero(lengths)
    if used.size == 0:
        return codes
    max_len = int(lengths.max())
    # Kraft's inequality in exact integer arithmetic: sum 2**(max_len - l) <= 2**max_len.
    kraft = sum(int(c) << (max_len - n) for n, c in enumerate(np.bincount(lengths[used])) if n)
    if kraft > 1 << max_len:
        raise ValueError("lengths: violate Kraft's inequality sum(2**-l) <= 1; not a prefix code")
    order = used[np.lexsort((used, lengths[used]))]
    sorted_len = lengths[order]
    # code[i] = sum over j < i of 2**(l_i - l_j): the Kraft sum of the shorter-or-equal
    # codes before i, scaled to i's length. Accumulated as a fraction of 2**max_len.
    weight = np.left_shift(np.uint64(1), (max_len - sorted_len).astype(np.uint64))
    before = np.cumsum(weight) - weight
    codes[order] = np.right_shift(before, (max_len - sorted_len).astype(np.uint64))
    return codes


def encode(symbols, alphabet_size: int | None = None) -> HuffmanEncoded:
    """Huffman-codes a stream of non-negative integers with a code built from its counts.

    Args:
      symbols: integer array (flattened) with values in [0, alphabet_size).
      alphabet_size: size of the length table; default max(symbols) + 1.
    Returns:
      HuffmanEncoded with the packed bits; num_bits = sum over symbols of their lengths.
    """
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols: expected integers, got dtype {symbols.dtype}")
    top = int(symbols.max()) + 1 if symbols.size else 0
    if symbols.size and int(symbols.min()) < 0:
        raise ValueError(f"symbols: values must be >= 0, got min {int(symbols.min())}")
    if alphabet_size is None:
        alphabet_size = top
    elif alphabet_size < top:
        raise ValueError(f"alphabet_size={alphabet_size}: must be > max(symbols) = {top - 1}")
    symbols = symbols.astype(np.int64)
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet_size))
    codes = canonical_codes(lengths)
    sym_len = lengths[symbols].astype(np.int64)
    sym_code = codes[symbols]
    num_bits = int(sym_len.sum())
    start = np.cumsum(sym_len) - sym_len
    stream = np.zeros(num_bits, np.uint8)
    # One vectorised pass per bit position within a code (at most the longest length),
    # instead of a Python loop over symbols.
    for j in range(int(lengths.max()) if lengths.size else 0):
        has = sym_len > j
        shift = (sym_len[has] - 1 - j).astype(np.uint64)
        stream[start[has] + j] = (np.right_shift(sym_code[has], shift) & np.uint64(1)).astype(
            np.uint8
        )
    return HuffmanEncoded(
        bits=np.packbits(stream),
        num_bits=num_bits,
        lengths=lengths,
        num_symbols=int(symbols.size),
    )


def decode(encoded: HuffmanEncoded) -> np.ndarray:
    """Decodes a HuffmanEncoded stream back to its int64 symbols.

    Vectorised canonical decoding: the code starting at every bit position is decoded at
    once (for each length l, the l-bit prefix v is a code iff
    first[l] <= v < first[l] + count[l]); then one pass follows the chain of code starts
    from bit 0, which is inherently sequential but touches only plain Python ints.
    """
    n = encoded.num_symbols
    lengths = np.asarray(encoded.lengths).astype(np.int64)
    if n == 0:
        return np.zeros(0, np.int64)
    used = np.flatnonzero(lengths)
    if used.size == 0:
        raise ValueError("encoded: num_symbols > 0 but the length table is empty")
    max_len = int(lengths.max())
    bits = np.unpackbits(np.asarray(encoded.bits, np.uint8))[: encoded.num_bits]
    if bits.size != encoded.num_bits:
        raise ValueError(
            f"encoded: num_bits={encoded.num_bits} but only {bits.size} bits are stored"
        )
    # window[p]: the max_len bits starting at p (zero past the end), as an integer.
    padded = np.concatenate([bits, np.zeros(max_len, np.uint8)]).astype(np.uint64)
    window = np.zeros(bits.size, np.uint64)
    for j in range(max_len):
        window |= padded[j : j + bits.size] << np.uint64(max_len - 1 - j)

    codes = canonical_codes(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    sym_at = np.full(bits.size, -1, np.int64)
    len_at = np.zeros(bits.size, np.int64)
    for length in range(1, max_len + 1):
        of_len = order[lengths[order] == length]
        if of_len.size == 0:
            continue
        first = codes[of_len[0]]
        prefix = window >> np.uint64(max_len - length)
        # Codes of one length are consecutive integers, in symbol order.
        idx = (prefix - first).astype(np.int64)
        hit = (prefix >= first) & (idx < of_len.size) & (len_at == 0)
        sym_at[hit] = of_len[idx[hit]]
        len_at[hit] = length
    len_list = len_at.tolist()
    positions = [0] * n
    pos = 0
    for i in range(n):
        positions[i] = pos
        step = len_list[pos] if pos < bits.size else 0
        if step == 0:
            raise ValueError(f"encoded: bit stream ends or is corrupt at bit {pos}")
        pos += step
    if pos != encoded.num_bits:
        raise ValueError(f"encoded: decoding used {pos} bits, num_bits={encoded.num_bits}")
    return sym_at[np.asarray(positions, np.int64)]
