"""The one quantizer registry: the compression pipeline's sharing and the LM study's
methods through one call and one return type; a quantizer of one's own serves both."""

import numpy as np
import pytest

from eie_jax.compression import quantizers, share
from eie_jax.studies.lm import methods
from eie_jax.utils.cli import UserError


def _matrix(seed=0, shape=(16, 256), sparsity=0.5):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) >= sparsity
    return np.where(mask, w, 0.0).astype(np.float32), mask


def test_one_table_quantizers_return_their_codebook_form():
    w, mask = _matrix()
    for name, trainable in (("kmeans", True), ("linear", False)):
        q = quantizers.quantize(name, w, mask, 4)
        assert q.codebook.shape == (16,) and q.codebook[0] == 0 and q.trainable == trainable
        np.testing.assert_array_equal(q.weights, q.codebook[q.codes])
        assert not q.weights[~mask].any() and (q.codes[mask] > 0).all()
        assert q.stored_bits == mask.sum() * 4 + 32 * 16
    codebook, codes = share.share_weights(w, mask, 4, init="linear")  # what kmeans wraps
    q = quantizers.quantize("kmeans", w, mask, 4)
    np.testing.assert_array_equal(q.codes, np.asarray(codes))
    np.testing.assert_array_equal(q.codebook, np.asarray(codebook, np.float32))


def test_the_lm_methods_are_entries_of_the_one_registry():
    assert set(methods.MATRIX) <= set(quantizers.REGISTRY)
    assert quantizers.one_table() == ["kmeans", "linear"]
    assert quantizers.get("gptq_g128").calibrated and not quantizers.get("rtn_sym_g32").calibrated
    w, _ = _matrix(sparsity=0.0)
    q = quantizers.quantize("rtn_sym_g128", w, None, 4)
    assert q.codebook is None and q.weights.shape == w.shape
    group = q.weights[:, :128] / np.abs(q.weights[:, :128]).max(axis=1, keepdims=True)
    levels = np.unique(np.round(group * 7, 4))  # a symmetric 4-bit grid per group: k / 7
    np.testing.assert_array_equal(levels, np.arange(-7, 8))
    with pytest.raises(UserError, match="needs the layer's calibration inputs"):
        quantizers.quantize("gptq_g128", w, None, 4)
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    assert quantizers.quantize("gptq_g128", w, None, 4, calibration=x).stored_bits > 0


def test_a_quantizer_of_ones_own_serves_the_pipeline_and_the_lm_study():
    @quantizers.register("test_sign", one_table=True)
    def sign(w, mask, bits, *, calibration=None, init=None, key=None):
        del calibration, init, key
        codebook = np.zeros(2**bits, np.float32)
        codebook[1:3] = (-1.0, 1.0)
        codes = np.where(mask, np.where(w < 0, 1, 2), 0)
        return quantizers.Quantized(codebook[codes], int(mask.sum()) * bits, codebook, codes)

    try:
        assert "test_sign" in quantizers.one_table() and "test_sign" in methods.methods()
        w, mask = _matrix()
        q = quantizers.quantize("test_sign", w, mask, 2)
        np.testing.assert_array_equal(q.weights, np.where(mask, np.sign(w), 0.0))
    finally:
        del quantizers.REGISTRY["test_sign"]
    with pytest.raises(UserError, match="quantizer='test_sign': allowed"):
        quantizers.get("test_sign")
