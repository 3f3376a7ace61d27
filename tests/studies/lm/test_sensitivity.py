"""Sensitivity-weighted k-means (SqueezeLLM): Fisher information against per-window
gradients taken one at a time, weighted Lloyd's against a NumPy oracle
(tests/oracle/weighted_kmeans.py), the plain k-means it reduces to with equal weights,
and the squeezellm quantizers in the one registry and run_job."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from eie_jax import models
from eie_jax.compression import quantizers, share
from eie_jax.compression.layers import compressible_layers, to_hardware
from eie_jax.data import text
from eie_jax.studies.lm import methods
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count
from eie_jax.studies.lm.methods import kmeans, sensitivity
from eie_jax.utils.cli import UserError
from tests.oracle import weighted_kmeans as oracle
from tests.studies.lm.test_bootstrap import tiny_study

TINY = {
    "char_transformer": dict(context=12, d_model=16, num_layers=1, num_heads=2, d_mlp=32),
    "char_lstm": dict(embed_dim=6, hidden=8, num_layers=2),
}


def _case(seed):
    """Values (R, N) and Fisher-like weights: heavy-tailed, some exact zeros, duplicates,
    one row of all-zero weights."""
    rng = np.random.default_rng(seed)
    rows, n = int(rng.choice([1, 3])), int(rng.choice([24, 57]))  # few shapes to compile
    values = rng.standard_normal((rows, n)).astype(np.float32)
    values[:, : n // 5] = values[:, n // 5 : 2 * (n // 5)]  # duplicates
    weights = (rng.exponential(size=(rows, n)) ** 3).astype(np.float32)
    weights[rng.random((rows, n)) < 0.2] = 0.0
    if rows > 1:
        weights[-1] = 0.0
    return values, weights, int(rng.choice([3, 8, 15, 16]))


@pytest.mark.parametrize("seed", range(40))
def test_weighted_lloyd_matches_the_oracle_from_the_same_start(seed):
    values, weights, k = _case(seed)
    init = ("linear", "density")[seed % 2]
    start = np.asarray(sensitivity.init_centroids(values, weights, k, init))
    centroids, codes = sensitivity.weighted_lloyd(values, weights, start, 30)
    ref_centroids, ref_codes = oracle.lloyd(values, weights, start, 30)
    np.testing.assert_array_equal(np.asarray(codes), ref_codes)
    np.testing.assert_allclose(np.asarray(centroids), ref_centroids, rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_starts_match_the_oracle(seed):
    values, weights, k = _case(seed)
    linear = sensitivity.init_centroids(values, weights, k, "linear")
    np.testing.assert_allclose(linear, oracle.init(values, weights, k, "linear"), atol=1e-6)
    # Integer weights: every cumulative sum exact, so the weighted quantiles are too.
    counts = np.random.default_rng(seed).integers(0, 9, values.shape).astype(np.float32)
    density = sensitivity.init_centroids(values, counts, k, "density")
    np.testing.assert_array_equal(density, oracle.init(values, counts, k, "density"))
    centroids, codes = sensitivity.weighted_kmeans(values, counts, k, 30, "density")
    ref_centroids, ref_codes = oracle.kmeans(values, counts, k, 30, "density")
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_allclose(centroids, ref_centroids, atol=1e-5)


def test_one_row_is_a_row_of_one():
    values, weights, k = _case(3)
    centroids, codes = sensitivity.weighted_kmeans(values[0], weights[0], k)
    rows_centroids, rows_codes = sensitivity.weighted_kmeans(values[:1], weights[:1], k)
    assert centroids.shape == (k,) and codes.shape == values[0].shape
    np.testing.assert_array_equal(codes, rows_codes[0])
    np.testing.assert_array_equal(centroids, rows_centroids[0])


@pytest.mark.parametrize("seed,bits", [(0, 4), (1, 3), (2, 2)])
def test_equal_weights_are_plain_kmeans(seed, bits):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((6, 64)).astype(np.float32)
    # Per row: kmeans_row's k-means; any constant weight, however small.
    _, ref_codes, ref_centroids = kmeans.row_kmeans_np(w, bits)
    for scale in (1.0, 1e-30, 3e7):
        centroids, codes = sensitivity.weighted_kmeans(w, np.full(w.shape, scale), 1 << bits)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_allclose(centroids, ref_centroids, atol=1e-5)
    # Per layer: share.share_weights' table, entry 0 the pruned zero.
    mask = rng.random(w.shape) > 0.3
    codebook, codes = sensitivity.layer_codebook(w, np.ones(w.shape), mask, bits)
    ref_codebook, ref_codes = share.share_weights(w, mask, bits)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_allclose(codebook, ref_codebook, atol=1e-5)


def test_a_sensitive_weight_gets_its_own_centroid():
    w = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    weights = np.ones_like(w)
    plain, _ = sensitivity.weighted_kmeans(w, weights, 4)
    weights[7] = 1e6
    weighted, codes = sensitivity.weighted_kmeans(w, weights, 4)
    assert np.min(np.abs(plain - w[7])) > 1e-2
    assert np.min(np.abs(weighted - w[7])) < 1e-3
    assert abs(weighted[codes[7]] - w[7]) < 1e-3


def test_layer_codebook_keeps_share_weights_conventions():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 40)).astype(np.float32)
    mask = rng.random(w.shape) > 0.5
    fisher = rng.exponential(size=w.shape).astype(np.float32) ** 2
    codebook, codes = sensitivity.layer_codebook(w, fisher, mask, 3)
    assert codebook.shape == (8,) and codebook[0] == 0.0 and np.all(np.diff(codebook[1:]) >= 0)
    assert np.all(codes[~mask] == 0) and np.all(codes[mask] >= 1)
    # Few distinct survivors: each its own entry, exactly.
    few = np.where(mask, np.round(w), 0.0).astype(np.float32)
    codebook, codes = sensitivity.layer_codebook(few, fisher, mask, 3)
    np.testing.assert_array_equal(codebook[codes], few)


def test_the_squeezellm_quantizers_in_the_one_registry():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 32)).astype(np.float32)
    fisher = rng.exponential(size=w.shape).astype(np.float32) ** 3
    layer, row = quantizers.get("squeezellm_layer"), quantizers.get("squeezellm_row")
    assert layer.calibrated and layer.one_table and row.calibrated and not row.one_table
    assert sensitivity.FISHER >= {"squeezellm_layer", "squeezellm_row"}
    assert {"squeezellm_layer", "squeezellm_row"} <= set(methods.methods())
    assert methods.calibration_kind("squeezellm_row") == "fisher"
    assert methods.calibration_kind("gptq_g128") == "inputs"
    assert methods.calibration_kind("rtn_sym_g32") is None
    for bits in (3, 4):
        q = quantizers.quantize("squeezellm_layer", w, None, bits, calibration=fisher)
        codebook, codes = sensitivity.layer_codebook(w, fisher, None, bits)
        np.testing.assert_array_equal(q.codes, codes)
        np.testing.assert_array_equal(q.weights, codebook[codes])
        assert (
            q.stored_bits
            == bit_count.layer_codebook(codes, bits)
            == 512 * bits + 16 * ((1 << bits) - 1)
        )
        q = quantizers.quantize("squeezellm_row", w, None, bits, calibration=fisher)
        assert q.stored_bits == bit_count.row_codebook(w.shape, bits)
        assert all(len(np.unique(r)) <= 1 << bits for r in q.weights)
    mask = rng.random(w.shape) > 0.5
    q = quantizers.quantize("squeezellm_row", w, mask, 4, calibration=fisher)
    assert not q.weights[~mask].any()
    with pytest.raises(UserError, match="needs the layer's calibration"):
        quantizers.quantize("squeezellm_layer", w, None, 4)
    with pytest.raises(ValueError, match="Fisher information"):
        quantizers.quantize("squeezellm_row", w, None, 4, calibration=fisher[:, :8])
    with pytest.raises(UserError, match="init='kmeans\\+\\+'"):
        quantizers.quantize("squeezellm_layer", w, None, 4, calibration=fisher, init="kmeans++")


def _tiny(name, seed=0):
    return models.get_model(name, rngs=nnx.Rngs(seed), vocab_size=9, **TINY[name])


def _one_window_at_a_time(model, inputs, targets):
    """Mean over windows of the squared gradient of each window's loss, one by one."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    @jax.grad
    def gradient(p, x, y):
        logits = nnx.merge(graphdef, p, rest)(x[None])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[None]).mean()

    total = {}
    for x, y in zip(inputs, targets, strict=True):
        grads = nnx.merge(graphdef, gradient(params, jnp.asarray(x), jnp.asarray(y)), rest)
        for name, layer in compressible_layers(grads):
            g = np.asarray(to_hardware(layer.kernel[...]), np.float64)
            total[name] = total.get(name, 0.0) + g * g / len(inputs)
    return total


@pytest.mark.parametrize("name", sorted(TINY))
def test_fisher_equals_gradients_taken_one_window_at_a_time(name):
    model = _tiny(name)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, 9, (5, 10)), rng.integers(0, 9, (5, 10))
    # A pruned layer: no gradient where the mask is 0.
    first_name, first = compressible_layers(model)[0]
    first.set_mask(rng.random(first.kernel_shape) > 0.5)
    expected = _one_window_at_a_time(model, inputs, targets)
    got = sensitivity.fisher(model, inputs, targets, batch_size=2)  # 3 batches, one padded
    assert set(got) == {n for n, _ in compressible_layers(model)} == set(expected)
    for key, layer in compressible_layers(model):
        assert got[key].shape == (layer.out_features, layer.in_features)
        assert got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, atol=1e-12)
    pruned = np.asarray(first.hardware_mask()) == 0
    assert pruned.any() and not got[first_name][pruned].any()


def test_run_job_gives_the_squeezellm_quantizers_the_fisher(tmp_path):
    config, corpus, model = tiny_study(tmp_path)
    calib = methods.Calibration(model, corpus, config)
    fisher = calib.fisher
    assert calib.fisher is fisher  # computed once for all the jobs
    rng = np.random.default_rng(config.seed + 1)  # the windows of calibration_inputs
    n, context = config.quantize.calibration_windows, config.data.context
    expected = sensitivity.fisher(model, *text.train_batch(corpus.train, n, context, rng))
    assert set(fisher) == set(expected)
    for key in fisher:
        np.testing.assert_array_equal(fisher[key], expected[key])
    job = methods.Job("squeezellm_layer_b3", "squeezellm_layer", (3,))
    assert job.calibration == "fisher" and job.needs_calibration
    shared = lm.copy(model)
    (row,) = methods.run_job(job, shared, corpus, config, calib)
    stored = eie = weights = 0
    st = config.storage
    for (key, layer), (_, dense) in zip(
        compressible_layers(shared), compressible_layers(model), strict=True
    ):
        w = np.asarray(to_hardware(dense.kernel[...]))
        codebook, codes = sensitivity.layer_codebook(w, fisher[key], None, 3)
        np.testing.assert_array_equal(np.asarray(to_hardware(layer.kernel[...])), codebook[codes])
        stored += bit_count.layer_codebook(codes, 3)
        eie += bit_count.layer_codebook_eie(codes, 3, st.eie_num_pes, st.eie_index_bits)
        weights += w.size
    assert row["runs_on_eie"] and row["bits"] == 3
    assert row["bits_per_weight"] == stored / weights
    assert row["eie_bits_per_weight"] == eie / weights
    # Given the inputs dict study.py passes today, the Fisher of the job's own dense copy.
    assert methods.run_job(job, lm.copy(model), corpus, config, {}) == [row]
    job = methods.Job("squeezellm_row_b4", "squeezellm_row", (4,))
    (row,) = methods.run_job(job, lm.copy(model), corpus, config, calib)
    assert not row["runs_on_eie"] and row["eie_bits_per_weight"] is None
    assert np.isfinite(row["test_nats"])
