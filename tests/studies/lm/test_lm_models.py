"""The character LMs (every matrix a MaskedLinear), their training pieces, checkpoints, and
`:smoke` runs of experiments.lm_compress on a tiny synthetic text."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import char_lstm, char_transformer
from eie_jax.api import on_eie
from eie_jax.compression.layers import MaskedLinear, compressible_layers
from eie_jax.data import text
from eie_jax.models import char_lstm as lstm_module
from eie_jax.models import char_transformer as tf_module
from eie_jax.studies.lm import report
from eie_jax.studies.lm import training as lm
from tests import synthetic_text
from tests.helpers import ROOT, png_size, run_entry_point

SMALL = {
    "char_transformer": dict(context=16, d_model=32, num_layers=2, num_heads=4, d_mlp=64),
    "char_lstm": dict(embed_dim=8, hidden=16, num_layers=2),
}
CLASSES = {"char_transformer": tf_module.CharTransformer, "char_lstm": lstm_module.CharLSTM}


def small(name, seed=0):
    return CLASSES[name](rngs=nnx.Rngs(seed), vocab_size=11, **SMALL[name])


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_matrix_is_masked_and_recorded(name):
    model = small(name)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 11, (3, 12)), jnp.int32)
    logits = model(ids)
    record = on_eie.record_inputs(model, ids)  # the model's own forward, each product seen
    assert logits.shape == (3, 12, 11)
    layers = dict(compressible_layers(model))
    assert set(record) == set(layers)  # GPTQ / AWQ calibrate every MaskedLinear
    for key, x in record.items():
        assert x.shape == (36, layers[key].in_features)
    kernels = [p for p in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)) if p.ndim == 2]
    masked = sum(isinstance(m, MaskedLinear) for _, m in nnx.iter_modules(model))
    assert len(kernels) == masked + 1 + (name == "char_transformer")  # + embedding, positions


def test_transformer_is_causal():
    model = small("char_transformer")
    ids = np.random.default_rng(1).integers(0, 11, (2, 16))
    changed = ids.copy()
    changed[:, 9:] = (changed[:, 9:] + 1) % 11
    a, b = model(jnp.asarray(ids)), model(jnp.asarray(changed))
    np.testing.assert_allclose(a[:, :9], b[:, :9], atol=1e-5)
    assert not np.allclose(a[:, 9:], b[:, 9:], atol=1e-3)


def test_lstm_equals_a_step_by_step_numpy_lstm():
    model = small("char_lstm")
    ids = np.random.default_rng(2).integers(0, 11, (2, 7))
    x = np.asarray(model.embed.embedding[...])[ids]
    for cell in model.cells:
        w, bias = np.asarray(cell.effective_kernel()), np.asarray(cell.bias[...])
        h = np.zeros((2, 16), np.float32)
        c = np.zeros((2, 16), np.float32)
        out = []
        for t in range(7):
            g = np.concatenate([x[:, t], h], -1) @ w + bias
            sig = lambda v: 1 / (1 + np.exp(-v))
            i, f, gg, o = np.split(g, 4, -1)
            c = sig(f) * c + sig(i) * np.tanh(gg)
            h = sig(o) * np.tanh(c)
            out.append(h)
        x = np.stack(out, 1)
    expected = x @ np.asarray(model.head.kernel[...]) + np.asarray(model.head.bias[...])
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_gradient_matches_finite_differences(name):
    model = small(name)
    ids = jnp.asarray(np.random.default_rng(3).integers(0, 11, (2, 9)), jnp.int32)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    layer = compressible_layers(model)[0][1]
    grads = nnx.grad(lm._loss)(model, inputs, targets)
    flat_grads = dict(nnx.to_flat_state(nnx.state(grads, nnx.Param)))
    name0 = compressible_layers(model)[0][0].split(".")
    key = tuple(int(p) if p.isdigit() else p for p in name0) + ("kernel",)
    g = np.asarray(flat_grads[key][...])
    kernel = np.asarray(layer.kernel[...])
    for idx in [(0, 0), (1, 2), (kernel.shape[0] - 1, kernel.shape[1] - 1)]:
        eps = 1e-2
        losses = []
        for sign in (1, -1):
            k = kernel.copy()
            k[idx] += sign * eps
            layer.kernel[...] = jnp.asarray(k)
            losses.append(float(lm._loss(model, inputs, targets)))
        layer.kernel[...] = jnp.asarray(kernel)
        fd = (losses[0] - losses[1]) / (2 * eps)
        assert abs(fd - g[idx]) <= 2e-3 + 2e-2 * abs(g[idx]), (idx, fd, g[idx])


def _tiny_config(get_config, tmp_path):
    config = get_config("smoke")
    config.data.data_dir = synthetic_text.write_corpus(str(tmp_path / "texts"))
    config.data.validation_works = ("beta",)
    config.data.test_works = ("gamma",)
    return config


@pytest.mark.slow
def test_pruning_keeps_masks_through_training_and_checkpoint_round_trip(tmp_path):
    config = _tiny_config(char_transformer.get_config, tmp_path)
    corpus = text.load(config.data.data_dir, ["beta"], ["gamma"])
    model = lm.build_model(config, corpus.vocab_size)
    out = lm.prune_gradually(model, corpus, config, 0.7)
    for name, layer in compressible_layers(model):
        assert out["kept"][name] == pytest.approx(0.3, abs=0.01)
        assert np.all(np.asarray(layer.kernel[...])[np.asarray(layer.mask[...]) == 0] == 0)
    path = str(tmp_path / "ckpt")
    lm.save_dense(path, model, dict(vocab=corpus.vocab))
    restored, meta = lm.restore_dense(path, lambda: lm.build_model(config, corpus.vocab_size, 99))
    assert meta["vocab"] == corpus.vocab
    ids = jnp.asarray(corpus.test[None, :16])
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(restored(ids)))
    for (_, a), (_, b) in zip(
        compressible_layers(model), compressible_layers(restored), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a.mask[...]), np.asarray(b.mask[...]))


@pytest.mark.slow
@pytest.mark.parametrize("module", [char_transformer, char_lstm], ids=["transformer", "lstm"])
def test_smoke_study(module, tmp_path):
    config = _tiny_config(module.get_config, tmp_path)
    workdir = str(tmp_path / "run")
    cmd = [
        "experiments.lm_compress",
        f"--config={os.path.join(ROOT, 'configs', module.__name__.split('.')[-1] + '.py')}:smoke",
        f"--config.data.data_dir={config.data.data_dir}",
        "--config.data.validation_works=('beta',)", "--config.data.test_works=('gamma',)",
        f"--workdir={workdir}",
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    names = {r["name"] for r in results["rows"]}
    rules = tuple(config.compose.rules)
    for method in config.quantize.methods:
        prefixes = rules if method == "pruned_kmeans" else (method,)
        assert any(n.startswith(prefixes) for n in names), method
    assert {"pruned_s0.50", "kmeans_layer_b4_s0.50_ft", "dense_retrained"} <= names
    assert {"sparsegpt_0.5", "wanda_0.5_squeezellm_layer_b4_ft"} <= names
    for r in results["rows"]:
        assert np.isfinite(r["test_nats"]) and r["bits_per_weight"] > 0
        # one table a layer: per-layer k-means, plain or Fisher-weighted, after pruning too
        on_eie = r["name"].startswith(("kmeans_layer", "squeezellm_layer")) or (
            r["name"].startswith(rules) and "_b" in r["name"]
        )
        assert r["runs_on_eie"] == on_eie, r["name"]
    for figure in ("pareto.png", "pareto_eie.png"):  # 9.0 x 5.6 in at 120 dpi
        assert png_size(os.path.join(workdir, figure)) == (1080, 672)
    families = {report.family(r) for r in results["rows"] if r["bits"] < 32}
    with open(os.path.join(workdir, "results.md")) as f:
        # the table (head, rule, dense and every row), then the read-off (head, rule, families)
        assert f.read().count("\n| ") == len(results["rows"]) + 2 + len(families) + 1
    if module is char_transformer:
        return
    # A rerun restores the dense model and skips every finished method (one model is enough).
    again = run_entry_point(*cmd, timeout=600)
    assert again.returncode == 0 and "restored from" in again.stderr
    assert "fine-tune" not in again.stderr


def test_missing_corpus_is_one_line(tmp_path):
    cmd = [
        "experiments.lm_compress",
        "--config=configs/char_lstm.py:smoke", f"--config.data.data_dir={tmp_path}",
        f"--workdir={tmp_path / 'run'}",
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "make text-data" in out.stderr


def test_group_that_does_not_divide_a_layer_is_refused_before_work():
    from eie_jax.studies.lm import study as lm_study
    from eie_jax.utils.cli import UserError

    config = char_lstm.get_config("smoke")
    config.model_kwargs.hidden = 48
    with pytest.raises(UserError, match="multiple of 32; cells.0 has 176"):
        lm_study.validate(config)
