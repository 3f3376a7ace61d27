"""Storage arithmetic on a hand-made layer, every number computed by hand below."""

import json

import numpy as np
import pytest

from eie_jax.compression import storage

# A 4 x 6 layer (M outputs x K inputs), 2-bit codes, 0 = pruned. Column-major (CSC) the
# 24 positions hold nonzeros at 0 (code 1), 9 (2), 19 (3), 20 (1) and 23 (1).
CODES = np.array(
    [
        [1, 0, 0, 0, 0, 1],
        [0, 0, 2, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 3, 1],
    ]
)
# With 3-bit relative indices (largest gap 7) the gaps are 0, 8, 9, 0, 2: the gaps of 8
# and 9 each need one filler zero (index 7), leaving 8 - 8 = 0 and 9 - 8 = 1.
ENTRY_CODES = [1, 0, 2, 0, 3, 1, 1]
ENTRY_INDEX = [0, 7, 0, 7, 1, 0, 2]


def test_relative_indices_with_filler_zeros():
    codes, index, fillers = storage.relative_indices(CODES, index_bits=3)
    assert codes.tolist() == ENTRY_CODES
    assert index.tolist() == ENTRY_INDEX
    assert fillers == 2


def test_relative_indices_match_eie_paper_example():
    # EIE Sec. III-B, 4-bit z: column [0,0,1,2, eighteen zeros, 3] -> v=[1,2,0,3], z=[2,0,15,2].
    col = np.array([0, 0, 1, 2] + [0] * 18 + [3])[:, None]
    codes, index, _ = storage.relative_indices(col, index_bits=4)
    assert codes.tolist() == [1, 2, 0, 3]
    assert index.tolist() == [2, 0, 15, 2]


def test_layer_storage_by_hand():
    r = storage.layer_storage(
        "fc", CODES, bits=2, index_bits=3, num_biases=4, eie_num_pes=1, eie_index_bits=1
    )
    assert (r.num_weights, r.num_nonzero, r.num_fillers, r.num_entries) == (24, 5, 2, 7)
    assert r.weights_kept == pytest.approx(5 / 24)
    # P+Q: 7 entries x 2 bits = 14 weight bits, 7 x 3 = 21 index bits, per kept weight.
    assert r.weight_bits_pq == pytest.approx(14 / 5)
    assert r.index_bits_pq == pytest.approx(21 / 5)
    assert r.codebook_bits == 3 * 32  # centroids 1..3; entry 0 is the constant zero
    assert r.bias_bits == 4 * 32
    assert r.total_bits_pq == 14 + 21 + 96 + 128 == 259
    assert r.dense_bits == 32 * (24 + 4) == 896
    assert r.compression_rate_pq == pytest.approx(896 / 259)
    # Huffman. Weight codes [1,0,2,0,3,1,1]: counts 3,2,1,1 -> lengths 1,2,3,3 -> 13 bits.
    # Indices [0,7,0,7,1,0,2]: counts 3,2,1,1 again -> 13 bits.
    assert r.weight_bits_pqh == pytest.approx(13 / 5)
    assert r.index_bits_pqh == pytest.approx(13 / 5)
    # Code-length tables: one byte per symbol, alphabets of 2**2 and 2**3 symbols.
    assert r.huffman_table_bits == 8 * 4 + 8 * 8
    assert r.total_bits_pqh == 13 + 13 + 96 + 96 + 128 == 346
    assert r.compression_rate_pqh == pytest.approx(896 / 346)
    # EIE, 1 PE, 1-bit z (largest gap 1): column 4 has row 3 after 3 zeros -> 1 padding;
    # column 5 has rows 0 and 3, gap 2 -> 1 padding; 5 + 2 = 7 entries of 2 + 1 bits.
    assert (r.eie_entries, r.eie_padding) == (7, 2)
    assert r.eie_pointer_bits == 1 * (6 + 1) * 16
    assert r.eie_codebook_bits == 4 * 16
    assert r.eie_bias_bits == 4 * 16
    assert r.eie_bits == 7 * 3 + 112 + 64 + 64 == 261
    assert r.compression_rate_eie == pytest.approx(896 / 261)


def test_eie_rows_interleave_over_pes():
    # 2 PEs: PE0 holds rows 0, 2 and PE1 rows 1, 3 (local rows 0, 1); every gap is now at
    # most 1, so no padding; pointers double.
    r = storage.layer_storage(
        "fc", CODES, bits=2, index_bits=3, num_biases=4, eie_num_pes=2, eie_index_bits=1
    )
    assert (r.eie_entries, r.eie_padding) == (5, 0)
    assert r.eie_bits == 5 * 3 + 2 * 7 * 16 + 64 + 64 == 367


def test_without_huffman_pqh_equals_pq():
    r = storage.layer_storage("fc", CODES, 2, 3, 4, huffman=False)
    assert r.weight_bits_pqh == r.weight_bits_pq and r.index_bits_pqh == r.index_bits_pq
    assert r.huffman_table_bits == 0 and r.total_bits_pqh == r.total_bits_pq == 259


def test_all_pruned_layer():
    r = storage.layer_storage("empty", np.zeros((3, 5), np.int32), 4, 5, 0)
    assert r.num_entries == 0 and r.eie_entries == 0
    assert r.weight_bits_pq == 0.0 and r.weight_bits_pqh == 0.0
    assert r.total_bits_pqh == r.total_bits_pq == 15 * 32


def test_lenet_300_100_dense_size():
    rng = np.random.default_rng(0)
    layers = []
    for name, (m, k) in {"fc1": (300, 784), "fc2": (100, 300), "fc3": (10, 100)}.items():
        codes = np.where(rng.random((m, k)) < 0.08, rng.integers(1, 16, (m, k)), 0)
        layers.append(storage.layer_storage(name, codes, 4, 5, num_biases=m))
    report = storage.CompressionReport(layers)
    assert report.num_weights + 300 + 100 + 10 == 266_610
    assert report.dense_bytes == 1_066_440
    # 8 % kept at about 4 + 5 bits per entry: far smaller than dense, larger than 4 bits/w.
    assert 20 < report.compression_ratio_pq < 60
    assert report.compression_ratio_pqh > report.compression_ratio_pq


def test_report_markdown_and_dict():
    rows = [
        storage.layer_storage("fc1", CODES, 2, 3, 4),
        storage.layer_storage("fc2", CODES.T, 2, 3, 6),
    ]
    report = storage.CompressionReport(rows)
    md = report.to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("| layer | #weights | weights % (P)")
    assert lines[2].startswith("| fc1 | 24 | 20.8 % | 2.80 | 2.60 | 4.20 | 2.60 |")
    assert lines[4].startswith("| total | 48 |")
    d = json.loads(json.dumps(report.to_dict()))
    assert d["layers"][0]["name"] == "fc1" and d["layers"][1]["shape"] == [6, 4]
    assert d["dense_bytes"] == 32 * (48 + 10) / 8
    # CODES.T column-major: nonzeros at 0 (1), 5 (1), 8 (2), 22 (3), 23 (1); gaps 0, 4, 2,
    # 13, 0: one filler for 13 -> 6 entries, P+Q 6 x 2 + 6 x 3 + 96 + 6 x 32 = 318 bits.
    # Huffman: codes [1,1,2,0,3,1] -> 11 bits, indices [0,4,2,7,5,0] -> 14 bits, tables
    # 96 bits: 11 + 14 + 96 + 96 + 192 = 409. With fc1's 259 and 346 bits (above):
    assert d["layers"][1]["total_bits_pq"] == 318 and d["layers"][1]["total_bits_pqh"] == 409
    assert d["compressed_bytes_pq"] == (259 + 318) / 8
    assert d["compressed_bytes_pqh"] == (346 + 409) / 8
    assert d["compression_ratio_pqh"] == pytest.approx((896 + 960) / (346 + 409))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(codes=np.zeros(5, int)), "codes: expected a 2-D"),
        (dict(codes=np.full((2, 2), 4)), r"codes: values must be in \[0, 2\*\*bits\)"),
        (dict(bits=0), "bits=0"),
        (dict(index_bits=17), "index_bits=17"),
        (dict(num_biases=-1), "num_biases=-1"),
    ],
)
def test_validation(kwargs, match):
    args = dict(name="x", codes=np.ones((2, 2), int), bits=2, index_bits=3, num_biases=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        storage.layer_storage(**args)
