"""Published dense models (studies/lm/dense.py): --retrain --publish writes the .npz of
Params and its .json; a study on a fresh workdir starts from it without training; a config
that made another model, a changed file or another vocabulary is one line before any work.
And the checkpoints shipped in checkpoints/ fit the shipped configs."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from configs import char_lstm, char_transformer
from eie_jax.studies.lm import dense
from eie_jax.studies.lm import study as lm_study
from eie_jax.studies.lm import training as lm
from eie_jax.training import checkpoint
from eie_jax.utils.cli import UserError
from tests import synthetic_text
from tests.helpers import ROOT, png_size


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic_text.write_corpus(tmp_path_factory.mktemp("texts"))


def _config(corpus, stem):
    config = char_lstm.get_config("smoke")
    config.data.update(data_dir=corpus, validation_works=("beta",), test_works=("gamma",))
    config.train.update(checkpoint=stem, curve_every=10)
    config.quantize.methods = ("rtn_sym_channel",)
    config.bootstrap.samples = 0
    return config


def _params(model):
    return [np.asarray(p) for p in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]


@pytest.fixture(scope="module")
def published_stem(corpus, tmp_path_factory):
    """A smoke LSTM trained with --retrain --publish; returns (stem, its results)."""
    root = tmp_path_factory.mktemp("published")
    stem = str(root / "checkpoints" / "lstm")
    config = _config(corpus, stem)
    results = lm_study.run(
        config, str(root / "trained"), dense_only=True, retrain=True, publish=True,
        command="python -m experiments.lm_compress --retrain --publish",
    )  # fmt: skip
    return stem, results


def test_publish_writes_params_and_what_made_them(published_stem, corpus):
    stem, results = published_stem
    info = json.load(open(stem + ".json"))
    assert info["sha256"] == checkpoint.sha256(stem + ".npz")
    assert info["dense_config"] == dense.dense_config(_config(corpus, stem))
    assert info["meta"]["test_nats"] == results["dense"]["test_nats"]
    assert [p["step"] for p in info["meta"]["curve"]] == [10, 20]
    assert info["command"] == "python -m experiments.lm_compress --retrain --publish"
    with np.load(stem + ".npz") as saved:  # Params only: no masks
        assert saved.files and not any("mask" in name for name in saved.files)


def test_a_fresh_workdir_starts_from_the_published_model(published_stem, corpus, tmp_path):
    stem, trained = published_stem
    config = _config(corpus, stem)
    results = lm_study.run(config, str(tmp_path / "w"))
    made = results["dense"]
    assert made["sha256"] == json.load(open(stem + ".json"))["sha256"]
    assert made["test_nats"] == trained["dense"]["test_nats"]
    assert "sha256 " + made["sha256"] in open(tmp_path / "w" / "results.md").read()
    assert png_size(str(tmp_path / "w" / "curve.png")) == (768, 528)  # the learning curve
    model, _ = lm.restore_dense(
        str(tmp_path / "w" / "dense"),
        lambda: lm.build_model(config, len(made["vocab"])),
    )
    reloaded = lm.build_model(config, len(made["vocab"]))
    checkpoint.load_params(stem + ".npz", reloaded)
    for a, b in zip(_params(model), _params(reloaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_config_of_another_model_is_refused_before_any_work(published_stem, corpus, tmp_path):
    stem, _ = published_stem
    config = _config(corpus, stem)
    config.train.learning_rate *= 2
    with pytest.raises(UserError, match=r"trained with other fields \(train.learning_rate"):
        lm_study.run(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")
    # ... while --retrain trains this config's own model
    config.train.checkpoint_minutes = 0.0
    results = lm_study.run(config, str(tmp_path / "r"), dense_only=True, retrain=True)
    assert "sha256" not in results["dense"] and results["dense"]["steps"] == 20


def test_a_changed_parameter_file_is_refused(published_stem, corpus, tmp_path):
    stem, _ = published_stem
    copy = str(tmp_path / "copy")
    for ext in (".npz", ".json"):
        with open(stem + ext, "rb") as src, open(copy + ext, "wb") as dst:
            dst.write(src.read())
    with np.load(copy + ".npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] + 1.0
    np.savez(copy + ".npz", **arrays)
    config = _config(corpus, copy)
    with pytest.raises(UserError, match="is not the recorded"):
        lm_study.run(config, str(tmp_path / "w"), dense_only=True)


def test_another_vocabulary_and_retrain_over_a_published_model_are_refused(
    published_stem, corpus, tmp_path
):
    stem, _ = published_stem
    other = synthetic_text.write_corpus(str(tmp_path / "other"), chars=3000, seed=5)
    with open(os.path.join(other, "alpha_gut.txt"), "a") as f:
        f.write("~")  # one character more in the training text
    config = _config(other, stem)
    with pytest.raises(UserError, match="trained on another vocabulary"):
        lm_study.run(config, str(tmp_path / "v"), dense_only=True)
    assert not os.path.exists(tmp_path / "v")
    workdir = str(tmp_path / "w")
    lm_study.run(_config(corpus, stem), workdir, dense_only=True)  # the published model
    with pytest.raises(UserError, match="--retrain: .* holds the published checkpoint"):
        lm_study.run(_config(corpus, stem), workdir, dense_only=True, retrain=True)


def test_damaged_parameter_file_is_one_line(tmp_path):
    path = str(tmp_path / "p.npz")
    checkpoint.save_params(path, nnx.Linear(3, 4, rngs=nnx.Rngs(0)))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])  # torn
    with pytest.raises(UserError, match="damaged"):
        checkpoint.load_params(path, nnx.Linear(3, 4, rngs=nnx.Rngs(0)))


def test_rerun_with_other_method_settings_is_refused(published_stem, corpus, tmp_path):
    stem, _ = published_stem
    workdir = str(tmp_path / "w")
    lm_study.run(_config(corpus, stem), workdir)
    config = _config(corpus, stem)
    config.quantize.methods = ("rtn_sym_channel", "rtn_sym_g128")  # more methods: fine
    rows = lm_study.run(config, workdir)["rows"]
    assert [r["name"] for r in rows] == ["rtn_sym_channel_b4", "rtn_sym_g128_b4"]
    config.quantize.bits = (3,)  # would leave 4-bit rows beside 3-bit ones
    with pytest.raises(UserError, match=r"other settings \(quantize.bits"):
        lm_study.run(config, workdir)


def test_curve_every_must_be_a_multiple_of_log_every(corpus):
    config = _config(corpus, "")
    config.train.update(curve_every=15, log_every=10)
    with pytest.raises(UserError, match="curve_every=15: must be a multiple of"):
        lm_study.validate(config)


def test_publish_needs_retrain_and_a_stem(corpus, tmp_path):
    config = _config(corpus, str(tmp_path / "x"))
    with pytest.raises(UserError, match="--publish .* needs --retrain"):
        lm_study.run(config, str(tmp_path / "w"), publish=True)
    config.train.checkpoint = ""
    with pytest.raises(UserError, match="needs --retrain and a config.train.checkpoint"):
        lm_study.run(config, str(tmp_path / "w"), retrain=True, publish=True)
    assert not os.path.exists(tmp_path / "w")


def test_params_of_another_shape_are_named(tmp_path):
    a = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
    path = str(tmp_path / "p.npz")
    checkpoint.save_params(path, a)
    with pytest.raises(UserError, match=r"bias has shape \(4,\), the model.s is \(5,\)"):
        checkpoint.load_params(path, nnx.Linear(3, 5, rngs=nnx.Rngs(0)))
    with pytest.raises(UserError, match="parameters of another model"):
        checkpoint.load_params(path, nnx.Linear(3, 4, use_bias=False, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize("module", [char_transformer, char_lstm])
def test_shipped_checkpoints_fit_the_shipped_configs(module):
    """The shipped config's checkpoint exists, hashes to its record, was made with this
    config's dense fields, and its parameters load into the model the config builds."""
    config = module.get_config()
    stem = config.train.checkpoint
    if not stem:
        pytest.skip(f"{module.__name__} names no published checkpoint")
    stem = os.path.join(ROOT, stem)
    info = dense.read(stem)
    assert info["sha256"] == checkpoint.sha256(stem + ".npz")
    changed = dense.workdirs.config_differences(
        info["dense_config"], dense.dense_config(config), dense.NOT_DENSE
    )
    assert changed == []
    model = lm.build_model(config, len(info["meta"]["vocab"]))
    checkpoint.load_params(stem + ".npz", model, expected_sha256=info["sha256"])
