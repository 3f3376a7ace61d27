"""Canonical Huffman coder: optimality, Kraft equality, canonical form, round trips."""

import itertools

import numpy as np
import pytest

from eie_jax.compression import huffman


def _kraft(lengths):
    used = lengths[lengths > 0]
    return float(np.sum(2.0 ** -used.astype(np.float64)))


def test_textbook_lengths():
    # CLRS 3rd ed. Fig. 16.5: frequencies a..f = 45, 13, 12, 16, 9, 5 give code lengths
    # 1, 3, 3, 3, 4, 4 (cost 224).
    lengths = huffman.code_lengths(np.array([45, 13, 12, 16, 9, 5]))
    np.testing.assert_array_equal(lengths, [1, 3, 3, 3, 4, 4])


def test_canonical_codes_rfc1951_example():
    # RFC 1951 Sec. 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A..H give
    # 010 011 100 101 110 00 1110 1111.
    codes = huffman.canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    np.testing.assert_array_equal(codes, [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111])


def _brute_force_cost(counts):
    """Cheapest total length over every length vector that satisfies Kraft (tiny alphabets)."""
    best = None
    for ls in itertools.product(range(1, len(counts)), repeat=len(counts)):
        if sum(2.0**-v for v in ls) <= 1.0:
            cost = sum(c * v for c, v in zip(counts, ls, strict=True))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("counts", [[1, 1, 2, 3, 5], [10, 1, 1, 1, 7], [4, 4, 4, 4, 1]])
def test_optimal_against_brute_force(counts):
    lengths = huffman.code_lengths(np.array(counts))
    assert int(np.dot(counts, lengths)) == _brute_force_cost(counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kraft_equality_and_prefix_free(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 1000, size=40)
    counts[:3] = 0  # unused symbols
    lengths = huffman.code_lengths(counts)
    assert np.all(lengths[counts == 0] == 0)
    assert _kraft(lengths) == pytest.approx(1.0, abs=1e-12)
    codes = huffman.canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths, strict=True) if n]
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)


def test_round_trip_skewed_and_size_matches_lengths():
    rng = np.random.default_rng(0)
    # Geometric-like skew, like relative indices and codes of a pruned layer.
    symbols = np.minimum(rng.geometric(0.3, size=20_000) - 1, 31)
    enc = huffman.encode(symbols, alphabet_size=32)
    np.testing.assert_array_equal(huffman.decode(enc), symbols)
    counts = np.bincount(symbols, minlength=32)
    assert enc.num_bits == int(np.dot(counts, enc.lengths))
    assert enc.bits.dtype == np.uint8 and enc.bits.size == -(-enc.num_bits // 8)
    # Entropy bound: H <= average length < H + 1.
    p = counts[counts > 0] / symbols.size
    entropy = float(-(p * np.log2(p)).sum())
    assert entropy <= enc.num_bits / symbols.size < entropy + 1


def test_bits_are_the_concatenated_codewords():
    symbols = np.array([0, 1, 0, 2, 2, 2])  # counts 2, 1, 3 -> lengths 2, 2, 1
    enc = huffman.encode(symbols)
    np.testing.assert_array_equal(enc.lengths, [2, 2, 1])
    # Canonical: 2 -> 0, 0 -> 10, 1 -> 11.
    stream = "10" + "11" + "10" + "0" + "0" + "0"
    assert enc.num_bits == len(stream)
    assert np.unpackbits(enc.bits)[: enc.num_bits].tolist() == [int(b) for b in stream]


def test_single_symbol_alphabet_uses_one_bit():
    enc = huffman.encode(np.full(7, 3))
    assert enc.num_bits == 7
    np.testing.assert_array_equal(enc.lengths, [0, 0, 0, 1])
    np.testing.assert_array_equal(huffman.decode(enc), np.full(7, 3))


def test_empty_input():
    enc = huffman.encode(np.zeros(0, np.int32), alphabet_size=16)
    assert enc.num_bits == 0 and enc.num_symbols == 0 and enc.bits.size == 0
    assert huffman.decode(enc).shape == (0,)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="symbols"):
        huffman.encode(np.array([1, -1]))
    with pytest.raises(ValueError, match="alphabet_size"):
        huffman.encode(np.array([5]), alphabet_size=4)
    with pytest.raises(ValueError, match="Kraft"):
        huffman.canonical_codes(np.array([1, 1, 1]))


def test_round_trip_300k_symbols():
    """A LeNet-300-100-sized stream (vectorised encoder and decoder; no timing here)."""
    rng = np.random.default_rng(1)
    symbols = rng.choice(16, size=300_000, p=np.r_[0.5, np.full(15, 0.5 / 15)])
    out = huffman.decode(huffman.encode(symbols, 16))
    np.testing.assert_array_equal(out, symbols)
