"""Calibrated one-shot pruning (eie_jax.compression.prune.calibrated): Wanda and SparseGPT
against the NumPy oracle (tests/oracle/calibrated_prune.py), their counts, SparseGPT's
reconstruction error, and `calibrated_prune` on a model made compressible."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eie_jax.compression import prune
from eie_jax.compression.compressible import make_compressible
from eie_jax.compression.layers import compressible_layers
from eie_jax.compression.prune import calibrated
from eie_jax.utils.cli import UserError
from tests.oracle import calibrated_prune as oracle

TARGETS = [dict(sparsity=0.5), dict(sparsity=0.6), dict(sparsity=0.7), dict(sparsity=0.8),
           dict(n=2, m=4)]  # fmt: skip
TARGET_IDS = ["50%", "60%", "70%", "80%", "2:4"]
# (M, K, blocksize): one block narrower than the default; four blocks of 32 with a ragged
# last one (K % 4 == 0); two blocks of 128, the last ragged, K % 4 == 2 (a partial group).
SHAPES = [(8, 16, 128), (16, 100, 32), (12, 202, 128)]


def _data(seed, rows, cols, samples=64):
    """W (M, K) and correlated calibration inputs X (N, K) with uneven feature scales."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    rank = cols // 4 + 1
    x = rng.standard_normal((samples, rank)) @ rng.standard_normal((rank, cols))
    x = (x + 0.3 * rng.standard_normal((samples, cols))) * rng.uniform(0.2, 3.0, cols)
    return w, x.astype(np.float32)


def _ar_data(seed, rows, cols, samples=256, rho=0.8):
    """W and inputs whose features correlate as an AR(1) sequence (corr rho^|i-j|), their
    scales uneven (0.2 .. 3), as a layer's inputs are."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    cov = rho ** np.abs(np.subtract.outer(np.arange(cols), np.arange(cols)))
    x = rng.standard_normal((samples, cols)) @ np.linalg.cholesky(cov).T
    return w, (x * rng.uniform(0.2, 3.0, cols)).astype(np.float32)


def _rows_kept(mask):
    return mask.sum(axis=1)


def _assert_exact_counts(mask, target):
    """Every row keeps round((1 - sparsity) * K); for 2:4 every group of 4 keeps 2 (a last
    partial group of r < 4 inputs keeps min(2, r))."""
    rows, cols = mask.shape
    if "sparsity" in target:
        assert (_rows_kept(mask) == round((1 - target["sparsity"]) * cols)).all()
        return
    counts = np.pad(mask, ((0, 0), (0, -cols % 4))).reshape(rows, -1, 4).sum(axis=2)
    assert (counts[:, : cols // 4] == 2).all()
    assert (counts[:, cols // 4 :] == min(2, cols % 4)).all()


# -- against the oracle ------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_wanda_equals_the_oracle_and_keeps_exact_counts(target):
    for seed, (rows, cols, _) in enumerate(SHAPES * 2):
        w, x = _data(seed, rows, cols)
        mask, w_new = calibrated.prune_matrix("wanda", w, x, **target)
        want_mask, want_w = oracle.wanda(w, x, **target)
        np.testing.assert_array_equal(mask, want_mask)
        np.testing.assert_array_equal(w_new, np.where(mask, w, 0.0))  # kept weights unchanged
        np.testing.assert_allclose(w_new, want_w, rtol=0, atol=0)
        _assert_exact_counts(mask, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_sparsegpt_equals_the_oracle_and_keeps_exact_counts(target):
    for seed, (rows, cols, blocksize) in enumerate(SHAPES * 2):
        w, x = _data(100 + seed, rows, cols)
        mask, w_new = calibrated.prune_matrix("sparsegpt", w, x, blocksize=blocksize, **target)
        want_mask, want_w = oracle.sparsegpt(w, x, blocksize=blocksize, **target)
        np.testing.assert_array_equal(mask, want_mask)
        # float32 against float64: the error of the Cholesky factors of an ill-conditioned
        # H (N = 64 < K) carried by the updates; the float64 run below agrees to 1e-9.
        np.testing.assert_allclose(w_new, want_w, rtol=0, atol=2e-4 * np.abs(want_w).max())
        assert not w_new[~mask].any()
        _assert_exact_counts(mask, target)


@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_sparsegpt_block_scope_is_the_reference_codes_threshold_per_block(sparsity):
    rows, cols, blocksize = SHAPES[1]
    for seed in range(3):
        w, x = _data(200 + seed, rows, cols)
        kw = dict(sparsity=sparsity, blocksize=blocksize, mask_scope="block")
        mask, w_new = calibrated.prune_matrix("sparsegpt", w, x, **kw)
        want_mask, want_w = oracle.sparsegpt(w, x, **kw)
        np.testing.assert_array_equal(mask, want_mask)
        np.testing.assert_allclose(w_new, want_w, rtol=0, atol=2e-4 * np.abs(want_w).max())
        assert mask.sum() == round((1 - sparsity) * rows * cols)
        assert len(set(_rows_kept(mask))) > 1  # rows differ: one threshold for the block


def test_float64_runs_equal_the_oracle_to_1e9():
    """The same algorithm step for step: in float64 the weights agree to rounding."""
    rows, cols, blocksize = SHAPES[1]
    w, x = _data(300, rows, cols)
    with jax.enable_x64(True):
        for target in (dict(sparsity=0.6), dict(n=2, m=4)):
            for rule in ("wanda", "sparsegpt"):
                kw = dict(blocksize=blocksize) if rule == "sparsegpt" else {}
                w64, x64 = w.astype(np.float64), x.astype(np.float64)
                mask, w_new = calibrated.prune_matrix(rule, w64, x64, **target, **kw)
                want_mask, want_w = getattr(oracle, rule)(w64, x64, **target, **kw)
                assert w_new.dtype == np.float64
                np.testing.assert_array_equal(mask, want_mask)
                np.testing.assert_allclose(w_new, want_w, rtol=0, atol=1e-9)


@pytest.mark.parametrize("rule", ["wanda", "sparsegpt"])
def test_weights_pruned_before_stay_pruned(rule):
    rows, cols, blocksize = SHAPES[1]
    w, x = _data(400, rows, cols)
    allowed = np.random.default_rng(0).random(w.shape) > 0.3
    x[:, 5] = 0.0  # a dead input: SparseGPT zeroes its weights and sets H_55 = 1
    kw = dict(blocksize=blocksize) if rule == "sparsegpt" else {}
    for target in (dict(sparsity=0.6), dict(n=2, m=4)):
        mask, w_new = calibrated.prune_matrix(rule, w, x, mask=allowed, **target, **kw)
        want_mask, want_w = getattr(oracle, rule)(w, x, allowed=allowed, **target, **kw)
        np.testing.assert_array_equal(mask, want_mask)
        np.testing.assert_allclose(w_new, want_w, rtol=0, atol=2e-4 * np.abs(want_w).max())
        assert not (mask & ~allowed).any()
    if rule == "sparsegpt":
        assert not w_new[:, 5].any()


def test_sparsegpt_compiles_once_per_shape():
    rows, cols, blocksize = SHAPES[0]
    w, x = _data(500, rows, cols)
    calibrated.prune_matrix("sparsegpt", w, x, sparsity=0.5)
    before = calibrated._sparsegpt._cache_size()
    for sparsity in (0.6, 0.7, 0.8):
        calibrated.prune_matrix("sparsegpt", w, x, sparsity=sparsity, percdamp=0.02)
    assert calibrated._sparsegpt._cache_size() == before


# -- what the rules are for ---------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_sparsegpt_reconstructs_the_layer_output_best(target):
    """||X W^T - X W'^T|| on correlated inputs: SparseGPT < Wanda < magnitude (per row)."""
    rows, cols, _ = SHAPES[1]
    for seed in range(3):
        w, x = _ar_data(600 + seed, rows, cols)
        errors = {}
        for rule in ("sparsegpt", "wanda"):
            _, w_new = calibrated.prune_matrix(rule, w, x, **target)
            errors[rule] = oracle.reconstruction_error(w, w_new, x)
        _, w_mag = oracle.wanda(w, np.ones_like(x), **target)  # |W| per row / group
        errors["magnitude"] = oracle.reconstruction_error(w, w_mag, x)
        assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors


# -- on a model ---------------------------------------------------------------------------


class _MLP(nnx.Module):
    def __init__(self, rngs):
        self.fc1 = nnx.Linear(24, 40, rngs=rngs)
        self.fc2 = nnx.Linear(40, 32, rngs=rngs)
        self.head = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))


def _model():
    return make_compressible(_MLP(nnx.Rngs(0)))


def _calibration(samples=96):
    _, x = _data(700, 1, 24, samples=samples)
    return jnp.asarray(x)


def test_calibrated_prune_writes_masks_and_weights_layer_after_layer():
    model, x = _model(), _calibration()
    dense = {name: np.asarray(layer.kernel[...]) for name, layer in compressible_layers(model)}
    kept = prune.calibrated_prune(model, x, "sparsegpt", 0.6, blocksize=16)
    assert list(kept) == ["fc1", "fc2", "head"]
    # Each layer's new weight is the rule's on its inputs from the model pruned so far.
    inputs = x
    for name, layer in compressible_layers(model):
        w = dense[name].T  # (M, K)
        mask, w_new = calibrated.prune_matrix(
            "sparsegpt", w, np.asarray(inputs), sparsity=0.6, blocksize=16
        )
        np.testing.assert_array_equal(np.asarray(layer.mask[...]).T > 0, mask)
        np.testing.assert_allclose(np.asarray(layer.kernel[...]).T, w_new, rtol=1e-6, atol=1e-6)
        assert kept[name] == pytest.approx(mask.mean())
        assert (mask.sum(axis=1) == round(0.4 * w.shape[1])).all()
        out = np.asarray(layer(inputs))
        np.testing.assert_allclose(
            out, np.asarray(inputs) @ (w_new * mask).T + np.asarray(layer.bias[...]), atol=1e-5
        )
        inputs = jax.nn.relu(out)


def test_calibrated_prune_rules_and_one_shot_inputs():
    model, x = _model(), _calibration()
    fc2_dense = np.asarray(model.fc2.kernel[...]).T
    h1_dense = np.asarray(jax.nn.relu(model.fc1(x)))
    rules = [("head", None), ("fc2", {"n": 2, "m": 4})]
    kept = prune.calibrated_prune(model, x, "wanda", 0.7, rules=rules, sequential=False)
    assert list(kept) == ["fc1", "fc2"] and kept["fc1"] == pytest.approx(0.3, abs=0.02)
    assert np.asarray(model.head.mask[...]).all()
    # sequential=False: fc2 was pruned on its inputs from the dense model.
    mask, _ = calibrated.prune_matrix("wanda", fc2_dense, h1_dense, n=2, m=4)
    np.testing.assert_array_equal(np.asarray(model.fc2.mask[...]).T > 0, mask)
    # A second pruning only removes weights.
    before = np.asarray(model.fc1.mask[...])
    prune.calibrated_prune(model, x, "sparsegpt", 0.8, rules=[("fc1", {})])
    after = np.asarray(model.fc1.mask[...])
    assert not (after > before).any() and after.mean() == pytest.approx(0.2, abs=0.02)


def test_calibrated_prune_on_a_conv_uses_the_kernels_column_order():
    """A conv's product gives channel-major patches; the rule sees them in the order of
    `to_matrix` (window major, channels fastest), checked here by hand-made patches."""

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=rngs)

        def __call__(self, x):
            return self.conv(x)

    model = make_compressible(Net(nnx.Rngs(1)))
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 6, 6, 3)) * np.array([0.1, 1.0, 5.0])).astype(np.float32)
    w = np.asarray(model.conv.kernel[...]).reshape(-1, 4).T  # (4, 27): (kh, kw, cin) columns
    patches = np.array([x[b, i : i + 3, j : j + 3, :].reshape(-1)
                        for b in range(2) for i in range(4) for j in range(4)])  # fmt: skip
    prune.calibrated_prune(model, jnp.asarray(x), "wanda", 0.5)
    mask, _ = oracle.wanda(w, patches, sparsity=0.5)
    np.testing.assert_array_equal(np.asarray(model.conv.mask[...]).reshape(-1, 4).T > 0, mask)


def test_errors_name_what_is_wrong():
    w, x = _data(800, 8, 16)
    with pytest.raises(UserError, match=r"allowed: \['sparsegpt', 'wanda'\]"):
        calibrated.prune_matrix("obs", w, x, sparsity=0.5)
    with pytest.raises(UserError, match="did you mean 'blocksize'"):
        calibrated.prune_matrix("sparsegpt", w, x, sparsity=0.5, blocksise=64)
    with pytest.raises(UserError, match="percdamp=-1"):
        calibrated.prune_matrix("sparsegpt", w, x, sparsity=0.5, percdamp=-1)
    with pytest.raises(UserError, match="give one of them"):
        calibrated.prune_matrix("wanda", w, x, sparsity=0.5, n=2, m=4)
    with pytest.raises(UserError, match="multiple of m=3"):
        calibrated.prune_matrix("sparsegpt", w, x, n=2, m=3)
    with pytest.raises(UserError, match="sparsity=1.5"):
        prune.calibrated_prune(_model(), _calibration(), "wanda", 1.5)
    with pytest.raises(UserError, match="unknown override 'quality'"):
        prune.calibrated_prune(_model(), _calibration(), rules=[("fc1", {"quality": 1})])
    model = _model()
    model.fc1.share(np.array([0.0, 1.0], np.float32), np.ones(model.fc1.kernel_shape, np.int32))
    with pytest.raises(UserError, match="layer 'fc1' is in phase 'shared'"):
        prune.calibrated_prune(model, _calibration())
