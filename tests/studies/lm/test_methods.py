"""The W4A16 study's quantisers against NumPy oracles (tests/oracle/quant_oracle.py), qwix,
and bits per weight counted by hand."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from qwix._src.core import qarray
from qwix.contrib import gptq_core

from eie_jax.compression.layers import MaskedLinear, compressible_layers
from eie_jax.studies.lm.methods import bits, kmeans, linear, qwix_ptq
from tests.oracle import quant_oracle


@pytest.mark.parametrize("seed", range(5))
def test_assign_matches_oracle_with_ties(seed):
    rng = np.random.default_rng(seed)
    centroids = np.sort(rng.normal(size=(3, 8)).astype(np.float32), axis=1)
    w = rng.normal(size=(3, 40)).astype(np.float32)
    w[:, :8] = centroids  # on a centroid
    w[:, 8:15] = (centroids[:, :-1] + centroids[:, 1:]) / 2  # (near-)midpoints: ties
    got = np.asarray(kmeans.assign(jnp.asarray(w), jnp.asarray(centroids)))
    np.testing.assert_array_equal(got, quant_oracle.assign(w, centroids))


@pytest.mark.parametrize("seed,bits", [(0, 4), (1, 3), (2, 2)])
def test_row_kmeans_matches_oracle(seed, bits):
    w = np.random.default_rng(seed).normal(size=(4, 48)).astype(np.float32)
    w_hat, codes, centroids = kmeans.row_kmeans_np(w, bits, iters=6)
    ref_hat, ref_codes = quant_oracle.row_kmeans(w, bits, iters=6)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_allclose(w_hat, ref_hat, rtol=1e-6, atol=1e-6)
    assert all(len(np.unique(row)) <= 1 << bits for row in w_hat)
    # Lloyd never increases the squared error of the linear start.
    _, _, c0 = kmeans.row_kmeans_np(w, bits, iters=0)
    start = np.take_along_axis(c0, quant_oracle.assign(w, c0), axis=1)
    assert np.sum((w - w_hat) ** 2) <= np.sum((w - start) ** 2) + 1e-6


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits_,group", [(4, 8), (3, 8), (4, 32), (3, 32)])
def test_rtn_matches_oracle(symmetric, bits_, group):
    rng = np.random.default_rng(bits_ * group)
    for trial in range(4):
        w = (rng.normal(size=(6, 32)) * rng.uniform(0.1, 2.0)).astype(np.float32)
        if trial == 0:
            w[0, :group] = 0.0  # an all-zero group: scale 1
            w[1] += 1.0  # a one-signed row: the asymmetric zero point moves
        w_hat, levels, scales, zeros = linear.rtn(w, bits_, group, symmetric)
        ref = quant_oracle.rtn(w, bits_, group, symmetric)
        np.testing.assert_array_equal(np.asarray(levels), ref[1])
        # XLA may turn the division by q_max into a multiplication: one ulp apart.
        np.testing.assert_allclose(np.asarray(scales), ref[2], rtol=2e-7, atol=0)
        np.testing.assert_allclose(np.asarray(w_hat), ref[0], rtol=0, atol=1e-6)
        if not symmetric:
            np.testing.assert_array_equal(np.asarray(zeros), ref[3])
            assert np.asarray(levels).min() >= 0 and np.asarray(levels).max() <= (1 << bits_) - 1
        # Round to nearest: within half a step; asymmetric, the rounded zero point may
        # shift the grid by up to another half step at the ends of the range.
        step = np.repeat(ref[2], group, axis=1) * (0.5 if symmetric else 1.0)
        assert np.all(np.abs(np.asarray(w_hat) - w) <= step + 1e-6)


def test_rtn_rejects_a_group_that_does_not_divide():
    with pytest.raises(ValueError, match="group=5"):
        linear.rtn(np.zeros((2, 8), np.float32), 4, 5, True)


def test_bits_by_hand():
    shape = (4, 8)  # M = 4 outputs, K = 8 inputs, 32 weights
    assert bits.layer_codebook(np.ones(shape, int), 4) == 32 * 4 + 15 * 16
    assert bits.row_codebook(shape, 4) == 32 * 4 + 4 * 16 * 16
    assert bits.row_codebook(shape, 3) == 32 * 3 + 4 * 8 * 16
    assert bits.linear_groups(shape, 4, 8, asymmetric=False) == 32 * 4 + 4 * 16
    assert bits.linear_groups(shape, 4, 4, asymmetric=True) == 32 * 4 + 8 * (16 + 4)
    assert bits.linear_groups(shape, 3, 4, asymmetric=False, input_scales=True) == (
        32 * 3 + 8 * 16 + 8 * 16
    )
    # Pruned, 2-bit relative indices (gaps of at most 3 zeros), read column by column:
    # entries at flat CSC positions 0, 5, 6 and 31; the gap of 4 before position 5 needs
    # one filler, the gap of 24 before 31 six: 4 + 1 + 6 = 11 entries of 4 + 2 bits.
    codes = np.zeros(shape, int)
    for pos in (0, 5, 6, 31):
        codes[pos % 4, pos // 4] = 1
    assert bits.layer_codebook(codes, 4, index_bits=2) == 11 * (4 + 2) + 15 * 16
    assert bits.sparse_float(codes, 2) == 11 * (32 + 2)


def test_gptq_matches_qwix_at_int4():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 16)).astype(np.float32)
    x = (rng.normal(size=(64, 16)) * rng.uniform(0.1, 3.0, 16)).astype(np.float32)
    x[:, 3] = 0.0  # a dead input
    h = qwix_ptq.hessian(x)
    q, _ = gptq_core.quantize_weight(jnp.asarray(w), h, qwix_ptq.how(4, 8), blocksize=8)
    expected = np.asarray(qarray.dequantize(q))
    got = np.asarray(qwix_ptq.gptq(w, h, 4, 8))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_gptq_int3_has_8_levels_per_group_and_beats_rtn_on_the_outputs():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 32)).astype(np.float32)
    x = (rng.normal(size=(256, 32)) @ rng.normal(size=(32, 32))).astype(np.float32)
    w_hat = np.asarray(qwix_ptq.gptq(w, qwix_ptq.hessian(x), 3, 16))
    for r in range(8):
        for g in range(2):
            assert len(np.unique(w_hat[r, 16 * g : 16 * (g + 1)])) <= 8
    rtn = np.asarray(qarray.dequantize(qarray.quantize(jnp.asarray(w), qwix_ptq.how(3, 16))))
    assert np.sum(((w_hat - w) @ x.T) ** 2) < np.sum(((rtn - w) @ x.T) ** 2)


@pytest.mark.parametrize("bits_", [4, 3])
def test_awq_is_no_worse_than_rtn_on_weighted_error(bits_):
    rng = np.random.default_rng(bits_)
    w = rng.normal(size=(8, 256)).astype(np.float32)
    x = (rng.normal(size=(64, 256)) * rng.uniform(0.01, 5.0, 256)).astype(np.float32)
    w_hat, scales = qwix_ptq.awq(w, x, bits_, 128)
    rtn = qarray.dequantize(qarray.quantize(jnp.asarray(w), qwix_ptq.how(bits_, 128)))
    act = np.mean(np.abs(x), axis=0)
    err = lambda v: np.mean(((np.asarray(v) - w) * act) ** 2)
    assert scales.shape == (256,)
    assert err(w_hat) <= err(rtn) + 1e-9


def test_share_model_per_layer_codebook_keeps_pruned_zero():
    layer = MaskedLinear(16, 8, rngs=nnx.Rngs(0))
    mask = (np.random.default_rng(0).random((16, 8)) > 0.5).astype(np.float32)
    layer.set_mask(mask)

    class Tiny(nnx.Module):
        def __init__(self):
            self.fc = layer

    model = Tiny()
    kmeans.share_model(model, 3)
    ((_, shared),) = compressible_layers(model)
    codes = np.asarray(shared.codes[...])
    assert shared.phase == "shared" and shared.codebook.shape == (8,)
    np.testing.assert_array_equal(codes == 0, mask == 0)
    assert len(np.unique(np.asarray(shared.effective_kernel()))) <= 8
