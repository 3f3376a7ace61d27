"""Tests for compression.layers: phases, straight-through scores, centroid gradients, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from eie_jax.compression import layers
from eie_jax.compression.layers import MaskedConv, MaskedLinear


def _random_mask(shape, density, seed):
    return (np.random.default_rng(seed).random(shape) < density).astype(np.float32)


class _TwoLayer(nnx.Module):
    def __init__(self, *, rngs):
        self.fc1 = MaskedLinear(12, 16, rngs=rngs)
        self.fc2 = MaskedLinear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(jax.nn.relu(self.fc1(x)))


def _grad_wrt_weight(layer, x, loss_of_output):
    """dL/dW for the layer's effective kernel W, computed without the layer's parametrisation."""
    bias = layer.bias[...]
    if isinstance(layer, MaskedConv):

        def out(w):
            y = jax.lax.conv_general_dilated(
                x, w, (1, 1), layer.padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return y + bias

    else:

        def out(w):
            return x @ w + bias

    return jax.grad(lambda w: loss_of_output(out(w)))(layer.effective_kernel())


def _make(kind, seed=0):
    rngs = nnx.Rngs(seed)
    if kind == "linear":
        return MaskedLinear(10, 7, rngs=rngs), jax.random.normal(jax.random.key(1), (5, 10))
    return MaskedConv(3, 4, 3, rngs=rngs), jax.random.normal(jax.random.key(1), (2, 6, 6, 3))


def _loss(y):
    return jnp.sum(jnp.sin(y) * jnp.arange(y.shape[-1]))


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_dense_phase_uses_kernel_times_mask(kind):
    layer, x = _make(kind)
    mask = _random_mask(layer.kernel_shape, 0.5, seed=3)
    layer.mask[...] = jnp.asarray(mask)
    w = np.asarray(layer.kernel[...]) * mask
    # The reference is Flax's own layer, built abstractly (no initialiser compiles).
    if kind == "linear":
        ref = nnx.eval_shape(lambda: nnx.Linear(10, 7, rngs=nnx.Rngs(0)))
    else:
        ref = nnx.eval_shape(lambda: nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=nnx.Rngs(0)))
    ref.kernel = nnx.Param(jnp.asarray(w))
    ref.bias = nnx.Param(layer.bias[...] + 0.25)
    layer.bias[...] = layer.bias[...] + 0.25
    np.testing.assert_allclose(layer(x), ref(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        jax.jit(lambda x: nnx.merge(*nnx.split(layer))(x))(x), ref(x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_pruned_weights_get_no_gradient(kind):
    layer, x = _make(kind)
    mask = _random_mask(layer.kernel_shape, 0.3, seed=4)
    layer.mask[...] = jnp.asarray(mask)
    grads = nnx.grad(lambda m: _loss(m(x)))(layer)
    g = np.asarray(grads["kernel"][...])
    assert np.all(g[mask == 0] == 0.0)
    assert np.any(g[mask == 1] != 0.0)


def test_score_phase_forward_is_hard_and_backward_is_identity():
    layer, x = _make("linear")
    allowed = _random_mask(layer.kernel_shape, 0.8, seed=5)
    layer.set_mask(allowed)
    scores = jax.random.normal(jax.random.key(7), layer.kernel_shape)
    layer.enable_scores(scores)
    hard = allowed * (np.asarray(scores) > 0)
    # Forward: exactly kernel * mask * [scores > 0].
    np.testing.assert_array_equal(layer.effective_kernel(), np.asarray(layer.kernel[...]) * hard)
    # Backward: dL/dscores = dL/dW * kernel (identity through the hard threshold).
    grads = nnx.grad(lambda m: _loss(m(x)))(layer)
    g_w = _grad_wrt_weight(layer, x, _loss)
    expected = np.asarray(g_w) * np.asarray(layer.kernel[...])
    np.testing.assert_allclose(grads["scores"][...], expected, rtol=1e-5, atol=1e-6)
    assert np.any(np.asarray(grads["scores"][...])[hard == 0] != 0.0)


def test_score_phase_topk_keeps_exact_count_within_mask():
    layer, _ = _make("linear")
    allowed = _random_mask(layer.kernel_shape, 0.6, seed=8)
    layer.set_mask(allowed)
    scores = jax.random.normal(jax.random.key(2), layer.kernel_shape)
    layer.enable_scores(scores, keep_fraction=0.25)
    hard = np.asarray(jax.jit(lambda s: nnx.merge(*s).hard_mask())(nnx.split(layer)))
    assert hard.sum() == round(0.25 * allowed.sum())
    assert np.all(hard[allowed == 0] == 0)


def test_sparsity_penalty_matches_formula_and_prunes_when_minimised():
    layer, _ = _make("linear")
    layer.enable_scores()  # all nonzero weights start kept
    kept_before = float(layer.hard_mask().sum())
    s = np.asarray(layer.scores[...])
    np.testing.assert_allclose(
        layer.sparsity_penalty(2.0), np.mean(1 / (1 + np.exp(-s / 2.0))), rtol=1e-6
    )
    opt = nnx.Optimizer(layer, optax.sgd(50.0), wrt=layers.Scores)
    penalty_grad = nnx.grad(lambda m: m.sparsity_penalty(), argnums=nnx.DiffState(0, layers.Scores))
    for _ in range(20):
        opt.update(layer, penalty_grad(layer))
    assert float(layer.hard_mask().sum()) < 0.5 * kept_before
    layer.freeze_scores()
    assert layer.phase == "dense" and layer.scores is None
    assert float(layer.mask[...].sum()) < 0.5 * kept_before


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("bits", [2, 4])
def test_centroid_gradient_is_sum_of_member_gradients(kind, bits):
    """Deep Compression Sec. 3.3, Eq. 3: dL/dC_k = sum over weights with code k of dL/dW."""
    layer, x = _make(kind)
    size = 2**bits
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, size, layer.kernel_shape)
    layer.set_mask((codes != 0).astype(np.float32))
    codebook = np.concatenate([[0.0], rng.normal(size=size - 1) * 0.3]).astype(np.float32)
    layer.share(codebook, codes)
    grads = nnx.grad(lambda m: _loss(m(x)))(layer)
    g_w = np.asarray(_grad_wrt_weight(layer, x, _loss), np.float64)
    expected = np.bincount(codes.ravel(), weights=g_w.ravel(), minlength=size)
    expected[0] = 0.0  # code 0 is the pruned weight: no gradient, it stays exactly 0.0
    np.testing.assert_allclose(grads["codebook"][...], expected, rtol=1e-4, atol=1e-5)
    assert grads["codebook"][...][0] == 0.0
    assert np.all(np.asarray(layer.effective_kernel())[codes == 0] == 0.0)


def test_shared_phase_trains_only_codebook_and_bias():
    model = _TwoLayer(rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    for _, layer in layers.compressible_layers(model):
        codes = rng.integers(0, 16, layer.kernel_shape)
        layer.set_mask((codes != 0).astype(np.float32))
        layer.share(np.linspace(-0.5, 0.5, 16).astype(np.float32) * (np.arange(16) > 0), codes)
    trained = nnx.state(model, nnx.Param)
    paths = sorted(".".join(map(str, p)) for p, _ in nnx.to_flat_state(trained))
    assert paths == ["fc1.bias", "fc1.codebook", "fc2.bias", "fc2.codebook"]

    opt = nnx.Optimizer(model, optax.adamw(1e-2, weight_decay=1e-2), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(0), (8, 12))
    before = np.asarray(model.fc1.codebook[...])

    @nnx.jit
    def step(model, opt):
        opt.update(model, nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model))

    for _ in range(5):
        step(model, opt)
    after = np.asarray(model.fc1.codebook[...])
    assert after[0] == 0.0 and np.any(after[1:] != before[1:])
    np.testing.assert_array_equal(model.fc1.codes[...] != 0, model.fc1.mask[...] > 0)


def test_share_validates_its_inputs():
    layer, _ = _make("linear")
    mask = _random_mask(layer.kernel_shape, 0.5, seed=1)
    layer.set_mask(mask)
    good = np.where(mask > 0, 1, 0)
    with pytest.raises(ValueError, match="entry 0"):
        layer.share(np.array([0.1, 0.2], np.float32), good)
    with pytest.raises(ValueError, match="codebook"):
        layer.share(np.zeros(3, np.float32), good)
    with pytest.raises(ValueError, match="range"):
        layer.share(np.zeros(2, np.float32), good * 2)
    with pytest.raises(ValueError, match="revive"):
        layer.share(np.zeros(2, np.float32), np.ones(layer.kernel_shape, int))
    with pytest.raises(ValueError, match="shape"):
        layer.share(np.zeros(2, np.float32), good[:, :3])
    layer.share(np.array([0.0, 0.2], np.float32), good)
    assert layer.phase == "shared" and layer.kernel is None and layer.weight_bits == 1


@pytest.mark.parametrize("use_apply_masks", [True, False])
def test_pruned_weights_stay_zero_through_adamw_momentum(use_apply_masks):
    """Prune mid-training with the optimizer's moments already built up (the real schedule):
    apply_masks keeps pruned kernel entries exactly 0.0 for 200 steps; without it they drift."""
    model = _TwoLayer(rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adamw(1e-2, b1=0.9, weight_decay=1e-2), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(0), (32, 12))
    y = jax.random.normal(jax.random.key(1), (32, 3))

    @nnx.jit(static_argnames="mask_after")
    def step(model, opt, mask_after):
        grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        if mask_after:
            layers.apply_masks(model)

    for _ in range(20):  # dense training: Adam's first and second moments are nonzero
        step(model, opt, mask_after=False)
    masks = {}
    for i, (name, layer) in enumerate(layers.compressible_layers(model)):
        masks[name] = _random_mask(layer.kernel_shape, 0.1, seed=i)  # 90 % pruned
        layer.set_mask(masks[name])
    for _ in range(200):
        step(model, opt, mask_after=use_apply_masks)

    pruned = np.concatenate(
        [
            np.asarray(layer.kernel[...])[masks[name] == 0]
            for name, layer in layers.compressible_layers(model)
        ]
    )
    if use_apply_masks:
        assert np.all(pruned == 0.0)
    else:
        assert np.any(pruned != 0.0)


def test_compressible_layers_natural_order_survives_split_merge():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc10 = MaskedLinear(2, 2, rngs=rngs)
            self.fc2 = MaskedLinear(2, 2, rngs=rngs)
            self.conv1 = MaskedConv(1, 2, 3, rngs=rngs)
            self.blocks = nnx.List([MaskedLinear(2, 2, rngs=rngs) for _ in range(11)])
            self.other = nnx.Linear(2, 2, rngs=rngs)

    net = Net(nnx.Rngs(0))
    expected = ["blocks.0", "blocks.1", "blocks.2"]
    names = [n for n, _ in layers.compressible_layers(net)]
    assert names[:3] == expected and names[10:] == ["blocks.10", "conv1", "fc2", "fc10"]
    merged = nnx.merge(*nnx.split(net))
    assert [n for n, _ in layers.compressible_layers(merged)] == names


def test_hardware_layout_is_transposed_kernel():
    layer, _ = _make("linear")
    np.testing.assert_array_equal(layer.hardware_matrix(), np.asarray(layer.kernel[...]).T)
    conv, _ = _make("conv")
    hw = conv.hardware_matrix()
    assert hw.shape == (4, 3 * 3 * 3)
    np.testing.assert_array_equal(layers.from_hardware(hw, conv.kernel_shape), conv.kernel[...])
    # Column j of the conv matrix is (kh, kw, in) in row-major order: input channel fastest.
    np.testing.assert_array_equal(hw[:, 1], np.asarray(conv.kernel[...])[0, 0, 1, :])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MaskedLinear(0, 3, rngs=nnx.Rngs(0)), "in_features"),
        (lambda: MaskedConv(1, 3, 5, rngs=nnx.Rngs(0), padding="FULL"), "padding"),
        (lambda: MaskedConv(1, 3, (5, 5, 5), rngs=nnx.Rngs(0)), "kernel_size"),
    ],
)
def test_constructor_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()
