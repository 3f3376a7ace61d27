"""Tests for eie_jax.models: parameter counts, shapes, and the EIE view of the FC layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eie_jax import eie, models
from eie_jax.compression import layers


def _num_params(model):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _abstract(name):
    # Shapes only: building the real LeNet-5 costs seconds of eager initialiser compiles.
    return nnx.eval_shape(lambda: models.get_model(name, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize(
    "name, params, order",
    [
        # Deep Compression (ICLR 2016) Table 1: LeNet-300-100 has 266,610 parameters.
        ("lenet_300_100", 266_610, ["fc1", "fc2", "fc3"]),
        # Caffe LeNet-5: 520 + 25,050 + 400,500 + 5,010.
        ("lenet5", 431_080, ["conv1", "conv2", "fc1", "fc2"]),
    ],
)
def test_parameter_count_shapes_and_layer_order(name, params, order):
    model = _abstract(name)
    assert _num_params(model) == params
    assert [n for n, _ in layers.compressible_layers(model)] == order
    for x in (
        jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32),
        jax.ShapeDtypeStruct((5, 28, 28, 1), jnp.float32),
    ):
        logits = nnx.eval_shape(lambda m, x: m(x), model, x)
        assert logits.shape == (x.shape[0], 10) and logits.dtype == jnp.float32


def test_lenet5_feature_map_feeds_fc1():
    model = _abstract("lenet5")
    assert model.conv1.kernel_shape == (5, 5, 1, 20)
    assert model.conv2.kernel_shape == (5, 5, 20, 50)
    assert model.fc1.kernel_shape == (800, 500)  # 28 -> 24 -> 12 -> 8 -> 4; 4 * 4 * 50


def _concrete(name, seed=0):
    # The real model with NumPy-random Params: eager JAX initialisers compile per shape.
    graphdef, state = nnx.split(_abstract(name))
    rng = np.random.default_rng(seed)
    state = jax.tree.map(
        lambda a: jnp.asarray(
            rng.normal(size=a.shape).astype(a.dtype) * 0.05
            if jnp.issubdtype(a.dtype, jnp.floating)
            else np.ones(a.shape, a.dtype)
        ),
        state,
    )
    model = nnx.merge(graphdef, state)
    for _, layer in layers.compressible_layers(model):
        layer.mask[...] = jnp.ones(layer.kernel_shape)
    return model


def test_fc_layers_give_eie_matrices_and_pruning_reaches_the_logits():
    model = _concrete("lenet_300_100")
    x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
    # The hardware matrix W (out, in) = kernel.T reproduces the layer: y = W a + b.
    a = x.reshape(2, -1)
    w_hw = model.fc1.hardware_matrix()
    assert w_hw.shape == (300, 784)
    np.testing.assert_allclose(
        model.fc1(a), (w_hw @ a.T).T + model.fc1.bias[...], rtol=1e-5, atol=1e-5
    )
    # A mask on fc3 changes the logits exactly as the masked hardware matrix says.
    mask = np.zeros((100, 10), np.float32)
    mask[:, 0] = 1.0
    model.fc3.set_mask(mask)
    logits = np.asarray(model(x))
    np.testing.assert_array_equal(logits[:, 1:], np.broadcast_to(model.fc3.bias[...][1:], (2, 9)))
    assert np.all(np.asarray(model.fc3.hardware_matrix())[1:] == 0.0)


def test_unknown_model_name_lists_the_names():
    with pytest.raises(ValueError, match="lenet5, lenet_300_100"):
        models.get_model("alexnet", rngs=nnx.Rngs(0))


def _max_pool_loops(x):
    """The oracle: each output is the max of its 2x2 window; an odd last row/column is dropped."""
    b, h, w, c = x.shape
    out = np.empty((b, h // 2, w // 2, c), x.dtype)
    for i in range(h // 2):
        for j in range(w // 2):
            out[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape", [(2, 6, 4, 3), (1, 7, 5, 2), (3, 24, 24, 20)])
def test_max_pool_takes_the_max_of_each_2x2_window(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(models.lenet._max_pool_2x2(x), _max_pool_loops(x))


def test_max_pool_gradient_flows_to_each_window_max_alone():
    x = np.random.default_rng(1).normal(size=(2, 6, 4, 3)).astype(np.float32)
    g = np.random.default_rng(2).normal(size=(2, 3, 2, 3)).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(models.lenet._max_pool_2x2(v) * g))(x)
    expected = np.zeros_like(x)
    for i in range(3):
        for j in range(2):
            window = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(2, 4, 3)
            di, dj = np.divmod(window.argmax(axis=1), 2)  # (2, 3) positions in the window
            for n in range(2):
                for ch in range(3):
                    expected[n, 2 * i + di[n, ch], 2 * j + dj[n, ch], ch] = g[n, i, j, ch]
    np.testing.assert_array_equal(grad, expected)


class _Shuffled(nnx.Module):
    """Ten layers whose forward calls them in an order neither declared nor natural."""

    ORDER = (3, 10, 1, 7, 2, 9, 4, 6, 5, 8)

    def __init__(self, *, rngs):
        for n, i in enumerate(self.ORDER):
            setattr(self, f"fc{i}", layers.MaskedLinear(5 if n == 0 else 4, 4, rngs=rngs))

    def __call__(self, x):
        for n, i in enumerate(self.ORDER):
            x = getattr(self, f"fc{i}")(x)
            x = jax.nn.relu(x) if n < len(self.ORDER) - 1 else x
        return x


def test_eie_runs_layers_in_the_order_the_forward_calls_them():
    from eie_jax.api import on_eie
    from eie_jax.compression import quantizers

    model = _Shuffled(rngs=nnx.Rngs(0))
    for _, layer in layers.compressible_layers(model):  # 8-bit codebooks: near-float weights
        q = quantizers.quantize("kmeans", layer.kernel[...], layer.mask[...], 8)
        layer.share(q.codebook, q.codes)
    x = jax.random.normal(jax.random.key(1), (8, 5))
    cfg = eie.EIEConfig(num_pes=4, weight_bits=8)
    out, report = on_eie.run_on_eie(model, x, config=cfg, rtl=False)
    assert [f.name for f in report.layers] == [f"fc{i}" for i in _Shuffled.ORDER]
    reference, _ = on_eie.run_fixed_point(model, x, programs=report.programs)
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_allclose(out, model(x), rtol=0.05, atol=0.02)
