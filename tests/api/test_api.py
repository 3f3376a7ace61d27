"""The library API on models defined here only: plain Flax layers, made compressible.

Surgery keeps float outputs bit-identical; every EIE layer's outputs and cycles equal the
NumPy oracle (tests/oracle) on that layer's recorded inputs; layers left out stay float.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import eie_jax
from eie_jax import eie
from eie_jax.compression.compressible import Compressible
from eie_jax.compression.layers import compressible_layers
from eie_jax.utils.cli import UserError
from tests.oracle import eie_oracle

SMALL = eie.EIEConfig(num_pes=4, fifo_depth=2)


class MLP(nnx.Module):
    """784-like MLP with GELU (not ReLU) between its layers."""

    def __init__(self, rngs, sizes=(20, 16, 12, 5), **kw):
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs, **kw) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = jax.nn.gelu(x)
        return x


class CNN(nnx.Module):
    """A strided SAME conv, a grouped VALID conv, then a Linear head."""

    def __init__(self, rngs):
        self.conv1 = nnx.Conv(3, 8, (3, 3), strides=2, padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(8, 6, (2, 2), feature_group_count=2, padding="VALID", rngs=rngs)
        self.head = nnx.Linear(6 * 5 * 5, 4, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.conv1(x))
        x = jnp.tanh(self.conv2(x))
        return self.head(x.reshape(x.shape[0], -1))


class Block(nnx.Module):
    """A transformer block: nnx.MultiHeadAttention (LinearGeneral inside) + Linear MLP."""

    def __init__(self, rngs, d=8):
        self.attn = nnx.MultiHeadAttention(2, d, decode=False, rngs=rngs)
        self.ln = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, 16, rngs=rngs)
        self.down = nnx.Linear(16, d, use_bias=False, rngs=rngs)

    def __call__(self, x):
        x = x + self.attn(x, mask=nnx.make_causal_mask(x[..., 0]))
        return x + self.down(jax.nn.relu(self.up(self.ln(x))))


class Shared(nnx.Module):
    """One Linear under two parents, called twice, and a vmap-stacked Linear."""

    def __init__(self, rngs):
        layer = nnx.Linear(6, 6, rngs=rngs)
        self.a = nnx.Dict(fc=layer)
        self.b = nnx.Dict(fc=layer)

        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def stacked(rngs):
            return nnx.Linear(6, 6, rngs=rngs)

        self.stack = stacked(rngs)

    def __call__(self, x):
        x = jnp.tanh(self.a["fc"](x))
        x = self.b["fc"](x)
        for i in range(3):
            w = self.stack.kernel[...][i]
            x = x @ w + self.stack.bias[...][i]
        return x


def _compress(model, x, sparsity=0.6, bits=4):
    eie_jax.prune_weights(model, sparsity)
    eie_jax.share_weights(model, bits)
    return model


def _check_against_oracle(report, vectors=3):
    """Each layer's outputs and cycles equal the NumPy oracle on its recorded inputs."""
    assert report.layers
    for figures in report.layers:
        fc, cfg = report.programs[figures.name]
        runs = report.recorded[figures.name]
        assert len(runs["inputs"]) == figures.vectors
        for i in np.linspace(0, figures.vectors - 1, vectors).astype(int):
            out, _, _, total = eie_oracle.simulate(
                fc.codes, fc.codebook, runs["inputs"][i], num_pes=cfg.num_pes,
                fifo_depth=cfg.fifo_depth, index_bits=cfg.index_bits,
                act_frac_bits=cfg.act_frac_bits, weight_frac_bits=cfg.weight_frac_bits,
                bias=fc.bias,
            )  # fmt: skip
            np.testing.assert_array_equal(runs["outputs"][i], out.astype(np.float32))
            assert int(runs["cycles"][i]) == total


@pytest.mark.slow
def test_mlp_surgery_bit_identical_prune_retrain_share_and_run_on_eie():
    model = MLP(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (24, 20))
    forward = nnx.jit(lambda m, x: m(x))
    before, before_jit = model(x), forward(model, x)
    params = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    assert eie_jax.make_compressible(model) is model
    assert all(isinstance(layer, Compressible) for layer in model.layers)
    assert isinstance(model.layers[0], nnx.Linear)
    np.testing.assert_array_equal(model(x), before)
    np.testing.assert_array_equal(forward(model, x), before_jit)
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    assert jax.tree.structure(after) == jax.tree.structure(params)

    kept = eie_jax.prune_weights(model, 0.75)
    assert set(kept) == {"layers.0", "layers.1", "layers.2"}
    assert all(abs(k - 0.25) < 0.02 for k in kept.values())
    masks = [np.asarray(layer.mask[...]) for layer in model.layers]
    optimizer = eie_jax.Optimizer(model, optax.adamw(1e-2, weight_decay=0.5))

    @nnx.jit
    def step(model, optimizer, x):
        grads = nnx.grad(lambda m: jnp.mean((m(x) - 1.0) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(5):
        step(model, optimizer, x)
    for layer, mask in zip(model.layers, masks, strict=True):
        kernel = np.asarray(layer.kernel[...])
        assert np.all(kernel[mask == 0] == 0.0)  # exactly 0 under AdamW + weight decay
        assert np.any(kernel[mask == 1] != 0.0)

    assert eie_jax.share_weights(model, 4) == dict.fromkeys(kept, 4)
    assert model.layers[0].kernel is None and model.layers[0].phase == "shared"
    outputs, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, batch_size=12)
    assert [f.name for f in report.layers] == ["layers.0", "layers.1", "layers.2"]
    assert outputs.shape == (24, 5)
    assert float(jnp.max(jnp.abs(outputs - model(x)))) < 0.05  # 16-bit fixed point vs float
    _check_against_oracle(report)
    totals = report.totals
    assert totals["cycles"] == sum(int(np.sum(r["cycles"])) for r in report.recorded.values())
    assert report.per_input["cycles"] == pytest.approx(totals["cycles"] / 24)
    assert "layers.1" in report.to_markdown()
    d = report.to_dict()
    assert d["layers"][0]["shape"] == [16, 20] and d["layers"][0]["vectors"] == 24
    assert eie_jax.storage_report(model).compression_ratio_pqh > 1


@pytest.mark.slow
def test_cnn_strided_and_grouped_convs_on_eie_equal_the_oracle():
    model = CNN(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (3, 12, 12, 3))
    before = model(x)
    eie_jax.make_compressible(model)
    np.testing.assert_array_equal(model(x), before)
    _compress(model, x)
    outputs, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, rtl=False)
    names = [f.name for f in report.layers]
    assert names == ["conv1", "conv2", "head"]
    # conv1: 6x6 output positions per image, K = 3 channels x 3 x 3 window.
    assert report["conv1"].vectors == 3 * 6 * 6 and report["conv1"].shape == (8, 27)
    # conv2: 2 groups -> block-diagonal W, (6, 8 x 2 x 2), half of it structurally zero.
    assert report["conv2"].shape == (6, 32) and report["conv2"].weight_density <= 0.5
    _check_against_oracle(report)
    assert float(jnp.max(jnp.abs(outputs - model(x)))) < 0.05


@pytest.mark.slow
def test_transformer_block_multihead_attention_and_use_bias_false():
    model = Block(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 5, 8))
    before = model(x)
    eie_jax.make_compressible(model)
    np.testing.assert_array_equal(model(x), before)
    assert isinstance(model.attn.query, Compressible) and model.down.bias is None
    _compress(model, x, sparsity=0.5)
    outputs, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, rtl=False)
    names = [f.name for f in report.layers]
    assert names == ["attn.query", "attn.key", "attn.value", "attn.out", "up", "down"]
    assert report["attn.query"].shape == (8, 8)  # (heads x head_dim, features)
    assert report["attn.out"].shape == (8, 8)
    _check_against_oracle(report)
    assert float(jnp.max(jnp.abs(outputs - model(x)))) < 0.05


def test_bf16_params_stay_bf16_and_bit_identical():
    model = MLP(nnx.Rngs(0), param_dtype=jnp.bfloat16, dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(4), (6, 20)).astype(jnp.bfloat16)
    before = model(x)
    eie_jax.make_compressible(model)
    after = model(x)
    assert after.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(after, np.float32), np.asarray(before, np.float32))
    _compress(model, x)
    assert model.layers[0].effective_kernel().dtype == jnp.bfloat16
    layer = model.layers[0]
    np.testing.assert_array_equal(  # the codebook holds exactly the bf16 weights
        np.asarray(layer.effective_kernel(), np.float32),
        np.where(np.asarray(layer.codes[...]) == 0, 0.0, np.asarray(layer.codebook[...])[
            np.asarray(layer.codes[...])]),
    )  # fmt: skip
    outputs, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, rtl=False)
    assert outputs.dtype == jnp.bfloat16
    _check_against_oracle(report)


def test_shared_submodule_counted_once_and_stacked_layer_left_float(caplog):
    model = Shared(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(5), (4, 6))
    before = model(x)
    with caplog.at_level(logging.INFO):
        eie_jax.make_compressible(model)
    assert model.a["fc"] is model.b["fc"] and isinstance(model.a["fc"], Compressible)
    assert type(model.stack) is nnx.Linear
    assert "stack (a stacked kernel of shape (3, 6, 6))" in caplog.text
    np.testing.assert_array_equal(model(x), before)
    _compress(model, x)
    _, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, rtl=False)
    assert len(report.layers) == 1
    figures = report.layers[0]
    assert figures.name == "a.fc" and figures.calls == 2 and figures.vectors == 8
    _check_against_oracle(report)


def test_rules_choose_compressible_and_eie_layers():
    model = MLP(nnx.Rngs(0))
    eie_jax.make_compressible(model, rules=[(r"layers\.2", None)])
    assert type(model.layers[2]) is nnx.Linear
    model = MLP(nnx.Rngs(0))
    eie_jax.make_compressible(model, rules=[(r"layers\.1", {"eie": False})])
    x = jax.random.normal(jax.random.key(6), (5, 20))
    eie_jax.prune_weights(model, 0.5, rules=[(r"layers\.0", {"sparsity": 0.8})])
    assert float(jnp.mean(model.layers[0].mask[...])) == pytest.approx(0.2, abs=0.01)
    assert float(jnp.mean(model.layers[1].mask[...])) == pytest.approx(0.5, abs=0.01)
    eie_jax.share_weights(model, 4, rules=[(r"layers\.2", {"bits": 3})])
    assert model.layers[2].weight_bits == 3

    seen = {}
    layer1 = model.layers[1]
    original = type(layer1).__call__

    def spy(self, h):
        out = original(self, h)
        if self is layer1:
            seen["layer1"] = (np.asarray(h), np.asarray(out))
        return out

    type(layer1).__call__ = spy
    try:
        _, report = eie_jax.run_on_eie(model, x, config=SMALL)
    finally:
        type(layer1).__call__ = original
    assert [f.name for f in report.layers] == ["layers.0", "layers.2"]
    h, out = seen["layer1"]  # the host layer: exactly its float forward
    np.testing.assert_array_equal(out, np.asarray(original(layer1, jnp.asarray(h))))
    _, report = eie_jax.run_on_eie(model, x, config=SMALL, rules=[(r"layers\.0", {"eie": False})])
    assert [f.name for f in report.layers] == ["layers.2"]


class Einsums(nnx.Module):
    """An Einsum and a LinearGeneral that are one product each, and a batch einsum."""

    def __init__(self, rngs):
        self.e = nnx.Einsum("...k,kn->...n", (6, 4), (4,), rngs=rngs)
        self.g = nnx.LinearGeneral((2, 3), (4,), axis=(-2, -1), rngs=rngs)
        self.batch = nnx.Einsum("bhk,hkn->bhn", (2, 6, 4), rngs=rngs)

    def __call__(self, x):
        return self.e(x) + self.g(x.reshape(x.shape[0], 2, 3))


def test_einsum_and_linear_general_run_and_batch_einsum_stays_float():
    model = Einsums(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(7), (3, 6))
    before = model(x)
    eie_jax.make_compressible(model)
    assert isinstance(model.e, Compressible) and isinstance(model.g, Compressible)
    assert type(model.batch) is nnx.Einsum
    np.testing.assert_array_equal(model(x), before)
    _compress(model, x)
    _, report = eie_jax.run_on_eie(model, x, config=SMALL, record=True, rtl=False)
    assert [f.name for f in report.layers] == ["e", "g"]
    _check_against_oracle(report)


def test_errors_name_the_layer():
    model = MLP(nnx.Rngs(0))
    with pytest.raises(UserError, match="make_compressible first"):
        eie_jax.prune_weights(model, 0.5)
    eie_jax.make_compressible(model)
    eie_jax.prune_weights(model, 0.5)
    x = jnp.ones((2, 20))
    with pytest.raises(UserError, match="'layers.0' is pruned but not shared"):
        eie_jax.run_on_eie(model, x)
    with pytest.raises(UserError, match="unknown override 'sparsty'"):
        eie_jax.prune_weights(model, 0.5, rules=[("layers.0", {"sparsty": 0.5})])
    with pytest.raises(UserError, match="bits=9"):
        eie_jax.share_weights(model, 9)


def test_batch_energy_equals_layer_energy_per_input():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (12, 20)) * (rng.random((12, 20)) < 0.3)
    codebook = np.concatenate([[0.0], np.linspace(-1, 1, 15)]).astype(np.float32)
    cfg = eie.EIEConfig(num_pes=4, fifo_depth=2)
    layer = eie.encode(codes, codebook, cfg)
    xs = rng.normal(size=(5, 20)).astype(np.float32) * (rng.random((5, 20)) < 0.5)
    res = eie.simulate_batch(layer, jnp.asarray(xs), cfg)
    active = np.asarray(eie.fixed_point.quantize(xs, cfg.act_frac_bits)) != 0
    batch = eie.energy.batch_energy(
        layer, active, np.asarray(res.pe_busy), np.asarray(res.total_cycles), cfg
    )
    for i in range(5):
        one = eie.simulate(layer, jnp.asarray(xs[i]), cfg)
        single = eie.energy.layer_energy(layer, xs[i], one, cfg)
        for event, value in single.breakdown_uj.items():
            assert batch[event][i] == pytest.approx(value, rel=1e-12, abs=1e-15)
        assert batch["useful_macs"][i] == single.useful_macs


@pytest.mark.parametrize("name", ["char_transformer", "char_lstm"])
def test_char_models_run_on_eie_through_their_own_forward(name):
    from eie_jax import models
    from eie_jax.api import on_eie

    sizes = dict(
        char_transformer=dict(context=8, d_model=16, num_layers=1, num_heads=2, d_mlp=32),
        char_lstm=dict(embed_dim=8, hidden=12, num_layers=2),
    )[name]
    model = models.get_model(name, rngs=nnx.Rngs(0), vocab_size=11, **sizes)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 11, (3, 8)), jnp.int32)
    eie_jax.prune_weights(model, 0.5)
    eie_jax.share_weights(model, 4)
    out, report = eie_jax.run_on_eie(model, ids, config=SMALL, record=True, rtl=False)
    names = {f.name for f in report.layers}
    assert names == {n for n, _ in compressible_layers(model)}
    if name == "char_lstm":  # the cell is called once per step: 8 calls of 3 vectors
        assert report["cells.0"].calls == 8 and report["cells.0"].vectors == 24
    _check_against_oracle(report, vectors=2)
    reference, _ = on_eie.run_fixed_point(model, ids, programs=report.programs)
    np.testing.assert_array_equal(out, reference)  # EIE equals the dense fixed point
    agree = np.mean(np.argmax(out, -1) == np.argmax(model(ids), -1))
    assert agree >= 0.9
