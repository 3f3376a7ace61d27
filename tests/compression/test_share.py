"""Weight sharing: JAX k-means against a NumPy reference, codebook invariants, int grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax.compression import share


def _numpy_kmeans(values, mask, centroids, iters=100):
    """Slow, obvious Lloyd's k-means over survivors; empty clusters keep their centroid."""
    x = values.reshape(-1)[mask.reshape(-1) != 0].astype(np.float64)
    c = np.asarray(centroids, np.float64).copy()
    for _ in range(iters):
        members = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        new = c.copy()
        for j in range(len(c)):
            if np.any(members == j):
                new[j] = x[members == j].mean()
        if np.max(np.abs(new - c)) <= 0.0:
            break
        c = new
    return c


def _layer(seed, shape=(60, 50), keep=0.3):
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.1, shape).astype(np.float32)
    mask = rng.random(shape) < keep
    return w, mask


def test_linear_and_density_inits_match_numpy():
    w, mask = _layer(0)
    s = w[mask != 0]
    lin = share.init_centroids(w, mask, 15, "linear")
    np.testing.assert_allclose(lin, np.linspace(s.min(), s.max(), 15), rtol=1e-6, atol=1e-7)
    dens = share.init_centroids(w, mask, 15, "density")
    np.testing.assert_allclose(dens, np.quantile(s, np.linspace(0, 1, 15)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("init", share.INITS)
def test_kmeans_matches_numpy_reference(init):
    w, mask = _layer(1)
    key = jax.random.key(3)
    start = np.asarray(share.init_centroids(w, mask, 15, init, key))
    res = share.kmeans_1d(w, mask, num_clusters=15, init=init, key=key, iters=100)
    ref = _numpy_kmeans(w, mask, start, iters=100)
    np.testing.assert_allclose(res.centroids, ref, atol=1e-5)
    assert 0 < int(res.num_iters) < 100  # converged to a fixed point
    # Every assignment is the nearest centroid.
    x = w.reshape(-1)[mask.reshape(-1) != 0]
    c = np.asarray(res.centroids)
    got = np.asarray(res.assignments)[mask.reshape(-1) != 0]
    dist = np.abs(x[:, None] - c[None, :])
    np.testing.assert_allclose(dist[np.arange(x.size), got], dist.min(axis=1))


@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_random_inits_pick_distinct_survivors(init):
    w, mask = _layer(2)
    survivors = set(w[mask != 0].tolist())
    start = np.asarray(share.init_centroids(w, mask, 15, init, jax.random.key(0)))
    assert set(start.tolist()) <= survivors
    assert len(set(start.tolist())) == 15
    other = np.asarray(share.init_centroids(w, mask, 15, init, jax.random.key(1)))
    assert not np.array_equal(start, other)


# The two inits with loops of their own (while_loop, fori_loop); eager dispatch is slow.
@pytest.mark.parametrize("init", ["linear", "kmeans++"])
def test_jit_and_eager_agree(init):
    w, mask = _layer(3, shape=(12, 10), keep=0.5)
    key = jax.random.key(5)
    jitted = share.kmeans_1d(w, mask, num_clusters=5, init=init, key=key, iters=6)
    with jax.disable_jit():
        eager = share.kmeans_1d(w, mask, num_clusters=5, init=init, key=key, iters=6)
    np.testing.assert_allclose(jitted.centroids, eager.centroids, atol=1e-6)
    np.testing.assert_array_equal(jitted.assignments, eager.assignments)


def test_pruned_weights_do_not_move_centroids():
    w, mask = _layer(4)
    far = np.where(mask == 0, 100.0, w).astype(np.float32)  # pruned entries are outliers
    a = share.kmeans_1d(w, mask, num_clusters=15, key=jax.random.key(0))
    b = share.kmeans_1d(far, mask, num_clusters=15, key=jax.random.key(0))
    np.testing.assert_allclose(a.centroids, b.centroids, atol=1e-7)


@pytest.mark.parametrize("bits,init", [(4, i) for i in share.INITS] + [(2, "linear")])
def test_share_weights_invariants(bits, init):
    w, mask = _layer(5)
    codebook, codes = share.share_weights(w, mask, bits, init=init, key=jax.random.key(0))
    assert codebook.shape == (2**bits,) and codebook.dtype == np.float32
    assert codes.shape == w.shape and codes.dtype == np.int32
    assert codebook[0] == 0.0
    np.testing.assert_array_equal(codes == 0, mask == 0)
    assert codes.min() >= 0 and codes.max() < 2**bits
    assert np.all(np.diff(codebook[1:]) >= 0)  # codes grow with the weight value
    # Each survivor maps to its nearest centroid among entries 1..2**bits - 1.
    alive = mask != 0
    dist = np.abs(w[alive][:, None] - codebook[None, 1:])
    np.testing.assert_allclose(
        np.abs(w[alive] - codebook[codes[alive]]), dist.min(axis=1), atol=1e-7
    )


def test_share_weights_error_within_half_a_linear_step():
    # 4 bits over a Gaussian layer: the shared weights stay close to the originals.
    w, mask = _layer(6)
    codebook, codes = share.share_weights(w, mask, 4)
    alive = mask != 0
    err = np.abs(codebook[codes] - w)[alive]
    assert err.max() < (w[alive].max() - w[alive].min()) / 14


def test_share_weights_few_survivors_exact():
    w = np.array([[0.5, -0.2, 0.3], [0.5, 0.9, 0.0]], np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    codebook, codes = share.share_weights(w, mask, 2)
    np.testing.assert_array_equal(codebook, np.array([0.0, -0.2, 0.5, 0.0], np.float32))
    np.testing.assert_array_equal(codes, [[2, 1, 0], [2, 0, 0]])


def test_share_weights_all_pruned():
    w = np.ones((3, 4), np.float32)
    codebook, codes = share.share_weights(w, np.zeros((3, 4)), 4)
    np.testing.assert_array_equal(codebook, np.zeros(16, np.float32))
    np.testing.assert_array_equal(codes, np.zeros((3, 4), np.int32))


def test_share_weights_validates():
    w, mask = _layer(7, shape=(4, 4))
    with pytest.raises(ValueError, match="bits=0"):
        share.share_weights(w, mask, 0)
    with pytest.raises(ValueError, match="init='nope'"):
        share.share_weights(w, mask, 4, init="nope")
    with pytest.raises(ValueError, match="mask"):
        share.share_weights(w, mask[:2], 4)


@pytest.mark.parametrize("axis", [-1, 0, None])
def test_linear_quantize_error_at_most_half_a_step(axis):
    w, mask = _layer(8, shape=(30, 20), keep=0.5)
    levels, scales = share.linear_quantize(w, mask, bits=4, axis=axis)
    levels, scales = np.asarray(levels), np.asarray(scales)
    assert levels.dtype == np.int32
    assert levels.min() >= -7 and levels.max() <= 7
    np.testing.assert_array_equal(levels[mask == 0], 0)
    w_hat = levels * scales
    alive = mask != 0
    half = np.broadcast_to(scales, w.shape)[alive] / 2
    assert np.all(np.abs(w_hat - w)[alive] <= half * (1 + 1e-6))
    # The largest |w| of each channel is exactly on the grid (level +-7).
    reduce = None if axis is None else tuple(a for a in range(2) if a != axis % 2)
    amax = np.max(np.abs(w * mask), axis=reduce, keepdims=True)
    np.testing.assert_allclose(scales, amax / 7, rtol=1e-6)


def test_linear_quantize_jit_and_zero_channel():
    w = np.array([[0.0, 1.0], [0.0, -0.6]], np.float32)
    levels, scales = jax.jit(share.linear_quantize, static_argnames=("bits", "axis"))(
        w, None, bits=4, axis=-1
    )
    np.testing.assert_array_equal(levels, [[0, 7], [0, -4]])  # -0.6 / (1/7) = -4.2 -> -4
    np.testing.assert_allclose(scales, [[1.0, 1.0 / 7]], rtol=1e-6)


def test_linear_codebook_matches_linear_quantize():
    w, mask = _layer(9, shape=(16, 12), keep=0.5)
    codebook, codes = share.linear_codebook(w, mask, bits=4)
    levels, scale = share.linear_quantize(w, mask, bits=4, axis=None)
    assert codebook[0] == 0.0 and codebook.shape == (16,)
    np.testing.assert_array_equal(codes == 0, mask == 0)
    np.testing.assert_allclose(codebook[codes], np.asarray(levels * scale), atol=1e-7)
    step = float(np.asarray(scale).reshape(()))
    np.testing.assert_allclose(codebook[1:], np.arange(-7, 8) * step, rtol=1e-6)


def test_kmeans_beats_linear_grid_on_gaussian_weights():
    # Deep Compression's premise: a learned codebook fits the weight distribution better
    # than a uniform grid with the same 16 entries.
    w, mask = _layer(10)
    alive = mask != 0
    cb_k, codes_k = share.share_weights(w, mask, 4)
    cb_l, codes_l = share.linear_codebook(w, mask, 4)
    mse_k = float(np.mean((cb_k[codes_k] - w)[alive] ** 2))
    mse_l = float(np.mean((cb_l[codes_l] - w)[alive] ** 2))
    assert mse_k < mse_l
    assert jnp.isfinite(mse_k)
