"""End to end: experiments.compress on synthetic IDX files, checked against independent models.

The EIE accuracy in report.json must equal the accuracy of the compressed network run, layer
by layer, through the NumPy oracle of EIE's fixed point (tests/oracle); the saved checkpoint
must reproduce the compressed accuracy; a rerun resumes, and a changed config is refused.
"""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import lenet5, lenet_300_100
from eie_jax import checkpoint, data, models, pipeline
from tests import synthetic
from tests.oracle import eie_oracle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_FIELDS = (
    "dataset", "dense_accuracy", "compressed_accuracy", "eie_accuracy", "compression_ratio",
    "compression_ratio_eie",
)  # fmt: skip
LAYER_FIELDS = ("weights_kept", "weight_bits", "index_bits", "cycles", "time_us", "load_efficiency")


def _smoke_config(get_config, data_dir):
    config = get_config("smoke")
    config.dataset = "mnist"
    config.data_dir = data_dir
    return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return synthetic.write_idx_dataset(str(tmp_path_factory.mktemp("idx")))


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory, data_dir):
    """The absl entry point, as a user runs it."""
    workdir = str(tmp_path_factory.mktemp("run"))
    cmd = [
        sys.executable, "-m", "experiments.compress",
        "--config=configs/lenet_300_100.py:smoke", "--config.dataset=mnist",
        f"--config.data_dir={data_dir}", f"--workdir={workdir}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(workdir, "report.json")) as f:
        return workdir, json.load(f), out.stderr, cmd


def test_report_fields(lenet_run):
    workdir, report, log, _ = lenet_run
    for field in REPORT_FIELDS:
        assert field in report, field
    assert report["dataset"] == "mnist"
    assert set(report["layers"]) == {"fc1", "fc2", "fc3"}
    for layer in report["layers"].values():
        for field in LAYER_FIELDS:
            assert field in layer, field
        assert layer["cycles"] > 0 and 0 < layer["load_efficiency"] <= 1
        assert layer["time_us"] == pytest.approx(layer["cycles"] / 800.0)
    rule = lenet_300_100.get_config("smoke").prune.rule
    for name, layer in report["layers"].items():  # the schedule reached every target
        assert layer["weights_kept"] == pytest.approx(1 - rule.layers[name].sparsity, abs=2e-3)
    assert report["compression_ratio"] > report["compression_ratio_pq"] > 10
    assert report["eie_equals_fixed_point"]
    assert os.path.exists(os.path.join(workdir, "report.md"))
    for stage in ("dense", "prune/gradual", "share/finetune", "eie"):
        assert f"[{stage}]" in log  # progress per stage


def test_eie_accuracy_equals_oracle_fixed_point(lenet_run, data_dir):
    """Rebuild the compressed model from its checkpoint and run the NumPy EIE oracle."""
    workdir, report, _, _ = lenet_run
    config = _smoke_config(lenet_300_100.get_config, data_dir)
    dataset = data.load_dataset("mnist", data_dir, validation_size=200, seed=config.seed)
    model = models.get_model("lenet_300_100", rngs=nnx.Rngs(0))
    checkpoint.restore(os.path.join(workdir, "checkpoints", "3_shared.npz"), model)
    acc = pipeline.accuracy(model, dataset.test.images, dataset.test.labels)
    assert acc == report["compressed_accuracy"]  # the checkpoint reproduces the model

    h = np.asarray(model.fc_input(jnp.asarray(dataset.test.images)))
    cycles = {}
    for layer in pipeline.fc_stack(model):
        entry = report["layers"][layer.name]
        outs, cyc = [], []
        for x in h:
            out, _, _, total = eie_oracle.simulate(
                layer.codes, layer.codebook, x, num_pes=64, fifo_depth=8, index_bits=4,
                act_frac_bits=entry["act_frac_bits"], weight_frac_bits=entry["weight_frac_bits"],
                relu=layer.relu, bias=layer.bias,
            )  # fmt: skip
            outs.append(out)
            cyc.append(total)
        h = np.stack(outs)
        cycles[layer.name] = np.mean(cyc)
    oracle_accuracy = float(np.mean(np.argmax(h, -1) == dataset.test.labels))
    assert oracle_accuracy == report["eie_accuracy"] == report["fixed_point_accuracy"]
    for name, c in cycles.items():
        assert c == pytest.approx(report["layers"][name]["cycles"], rel=1e-6)
    # 16-bit fixed point keeps the compressed model's decisions on this data.
    assert abs(report["eie_accuracy"] - report["compressed_accuracy"]) <= 0.05


def test_rerun_resumes_and_changed_config_is_refused(lenet_run):
    workdir, report, _, cmd = lenet_run
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[3_shared] resumed" in out.stderr and "[dense] epoch" not in out.stderr
    with open(os.path.join(workdir, "report.json")) as f:
        again = json.load(f)
    for field in ("dense_accuracy", "compressed_accuracy", "eie_accuracy", "compression_ratio"):
        assert again[field] == report[field]
    changed = subprocess.run(
        cmd + ["--config.train.learning_rate=0.5"], cwd=ROOT, capture_output=True, text=True
    )
    assert changed.returncode != 0 and "train.learning_rate" in changed.stderr


def test_lenet5_smoke_compresses_convs_and_runs_fcs_on_eie(tmp_path, data_dir):
    report = pipeline.train_and_evaluate(_smoke_config(lenet5.get_config, data_dir), str(tmp_path))
    layers = report["layers"]
    assert list(layers) == ["conv1", "conv2", "fc1", "fc2"]
    assert "cycles" not in layers["conv1"] and layers["fc1"]["cycles"] > 0
    assert layers["conv1"]["codebook_bits"] == 8 and layers["fc1"]["codebook_bits"] == 4
    assert report["eie_equals_fixed_point"]


def test_target_density_rescales_layers_and_keeps_ratios(data_dir):
    config = _smoke_config(lenet_300_100.get_config, data_dir)
    config.prune.target_density = 0.12
    model = models.get_model("lenet_300_100", rngs=nnx.Rngs(0))
    rule = pipeline.prune_rule(config, model)
    sizes = {"fc1": 235200, "fc2": 30000, "fc3": 1000}
    keep = {k: 1 - rule["layers"][k]["sparsity"] for k in sizes}
    overall = sum(keep[k] * sizes[k] for k in sizes) / sum(sizes.values())
    assert overall == pytest.approx(0.12, rel=1e-6)
    layers = config.prune.rule.layers
    ratio = (1 - layers.fc1.sparsity) / (1 - layers.fc2.sparsity)
    assert keep["fc1"] / keep["fc2"] == pytest.approx(ratio, rel=1e-6)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("train.optimizer", "rmsprop", "train.optimizer='rmsprop'"),
        ("prune.schedule", "sometimes", "prune.schedule='sometimes'"),
        ("share.bits", 9, "share.bits=9"),
        ("eie.num_pes", 0, "num_pes"),
        ("prune.target_density", 1.5, "prune.target_density=1.5"),
    ],
)
def test_bad_config_names_field_and_value(field, value, match):
    config = lenet_300_100.get_config("smoke")
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(ValueError, match=match):
        pipeline.validate_config(config)


def test_unknown_layer_override_is_refused():
    config = lenet_300_100.get_config("smoke")
    config.share.layer_bits = dict(fc9=4)
    with pytest.raises(ValueError, match="share.layer_bits.fc9"):
        pipeline.validate_config(config)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    config = lenet_300_100.get_config("smoke")
    config.data_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        pipeline.train_and_evaluate(config, str(tmp_path / "w"))
