"""End to end: experiments.compress on synthetic IDX files, checked against independent models.

The EIE accuracy in report.json must equal the accuracy of the compressed network run, layer
by layer, through the NumPy oracle of EIE's fixed point (tests/oracle); the saved checkpoint
must reproduce the compressed accuracy; a rerun resumes, and a changed config is refused.
"""

import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx

from configs import lenet5, lenet_300_100
from eie_jax import models
from eie_jax.compression import prune
from eie_jax.data import idx as data
from eie_jax.studies.compress import pipeline
from eie_jax.training import checkpoint
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError
from tests.helpers import assert_one_line_error, run_entry_point, smoke_config, without_times
from tests.oracle import eie_oracle

REPORT_FIELDS = (
    "dataset", "dense_accuracy", "compressed_accuracy", "eie_accuracy", "compression_ratio",
    "compression_ratio_eie",
)  # fmt: skip
LAYER_FIELDS = ("weights_kept", "weight_bits", "index_bits", "cycles", "time_us", "load_efficiency")


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory, data_dir):
    """The absl entry point, as a user runs it."""
    workdir = str(tmp_path_factory.mktemp("run"))
    cmd = [
        "experiments.compress",
        "--config=configs/lenet_300_100.py:smoke", "--config.dataset=mnist",
        f"--config.data_dir={data_dir}", f"--workdir={workdir}",
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=600)
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
    targets = lenet_300_100.get_config("smoke").prune.layers
    for name, layer in report["layers"].items():  # the schedule reached every target
        assert layer["weights_kept"] == pytest.approx(1 - targets[name].sparsity, abs=2e-3)
    assert report["compression_ratio"] > report["compression_ratio_pq"] > 10
    assert report["eie_equals_fixed_point"]
    with open(os.path.join(workdir, "report.md")) as f:
        markdown = f.read()
    assert markdown.startswith("# lenet_300_100 on mnist\n")
    assert f"| compressed on EIE (16-bit fixed point) | {report['eie_accuracy']:.4f} |" in markdown
    for name, layer in report["layers"].items():
        assert f"| {name} | {layer['cycles']:.1f} | {layer['time_us']:.3f} |" in markdown
    for stage in ("dense", "prune/gradual", "share/finetune", "eie"):
        assert f"[{stage}]" in log  # progress per stage


def test_eie_accuracy_equals_oracle_fixed_point(lenet_run, data_dir):
    """Rebuild the compressed model from its checkpoint and run the NumPy EIE oracle."""
    workdir, report, _, _ = lenet_run
    config = smoke_config(lenet_300_100.get_config, data_dir)
    dataset = data.load_dataset("mnist", data_dir, validation_size=200, seed=config.seed)
    model = models.get_model("lenet_300_100", rngs=nnx.Rngs(0))
    checkpoint.restore(os.path.join(workdir, "checkpoints", "3_shared"), model)
    acc = pipeline.accuracy(model, dataset.test.images, dataset.test.labels)
    assert acc == report["compressed_accuracy"]  # the checkpoint reproduces the model

    h = np.asarray(dataset.test.images).reshape(len(dataset.test.images), -1)
    cycles = {}
    for name, relu in (("fc1", True), ("fc2", True), ("fc3", False)):  # LeNet-300-100
        layer, entry = getattr(model, name), report["layers"][name]
        outs, cyc = [], []
        for x in h:
            out, _, _, total = eie_oracle.simulate(
                np.asarray(layer.hardware_codes()), np.asarray(layer.codebook[...]), x,
                num_pes=64, fifo_depth=8, index_bits=4, act_frac_bits=entry["act_frac_bits"],
                weight_frac_bits=entry["weight_frac_bits"], relu=relu,
                bias=np.asarray(layer.bias[...]),
            )  # fmt: skip
            outs.append(out)
            cyc.append(total)
        h = np.stack(outs)
        cycles[name] = np.mean(cyc)
    oracle_accuracy = float(np.mean(np.argmax(h, -1) == dataset.test.labels))
    assert oracle_accuracy == report["eie_accuracy"] == report["fixed_point_accuracy"]
    for name, c in cycles.items():
        assert c == pytest.approx(report["layers"][name]["cycles"], rel=1e-6)
    # 16-bit fixed point keeps the compressed model's decisions on this data.
    assert abs(report["eie_accuracy"] - report["compressed_accuracy"]) <= 0.05


def test_rerun_resumes_and_changed_config_is_refused(lenet_run):
    workdir, report, _, cmd = lenet_run
    out = run_entry_point(*cmd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[4_eie] resumed" in out.stderr and "[dense] epoch" not in out.stderr
    assert "[eie]" in out.stderr and "simulate" not in out.stderr
    with open(os.path.join(workdir, "report.json")) as f:
        again = json.load(f)
    del again["seconds"]["wall"], report["seconds"]["wall"]
    assert again == report  # every stage resumed, its seconds included
    changed = run_entry_point(*cmd, "--config.train.learning_rate=0.5")
    assert_one_line_error(changed, "train.learning_rate")


@pytest.mark.parametrize(
    "field, value, needles",
    [
        ("prune.layers.fc1.sparsity", 1.5, ["config.prune.layers.fc1.sparsity=1.5"]),
        ("prune.layers.fc1.sparsity", -0.1, ["config.prune.layers.fc1.sparsity=-0.1"]),
        ("prune.sparsity", 1.5, ["config.prune.sparsity=1.5"]),
        ("prune.structure", "magnitude", ["config.prune.structure='magnitude'"]),
        ("share.bits", 9, ["config.share.bits=9"]),
        ("eie.clock_mhz", float("inf"), ["clock_mhz", "inf"]),
        ("model", "lenet7", ["config.model='lenet7'"]),
        ("data_dir", "/nonexistent/idx", ["/nonexistent/idx"]),
    ],
)
def test_user_errors_name_field_and_value_before_any_stage(
    tmp_path, data_dir, field, value, needles
):
    """Each mistake is a one-line UserError before any stage (the entry point prints such
    an error as one line and exits 2: test_entry_point_errors_are_one_line)."""
    config = workdirs.apply_overrides(
        smoke_config(lenet_300_100.get_config, data_dir), {field: value}
    )
    workdir = tmp_path / "w"
    with pytest.raises(UserError) as caught:
        pipeline.train_and_evaluate(config, str(workdir))
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert not (workdir / "checkpoints").exists()  # no stage ran


@pytest.mark.parametrize(
    "override, needles",
    [
        ("--config.prune.foo=1", ["--config.prune.foo"]),  # caught by the flag parser
        ("--config.eie.clock_mhz=inf", ["clock_mhz", "inf"]),  # caught in main
    ],
)
def test_entry_point_errors_are_one_line(tmp_path, data_dir, override, needles):
    workdir = tmp_path / "w"
    cmd = [
        "experiments.compress", "--config=configs/lenet_300_100.py:smoke",
        "--config.dataset=mnist", f"--config.data_dir={data_dir}", f"--workdir={workdir}",
        override,
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=300)
    assert_one_line_error(out, *needles)
    assert not (workdir / "checkpoints").exists()  # no stage ran


def test_unwritable_workdir_and_damaged_checkpoint_are_one_line(tmp_path, data_dir, lenet_run):
    base = [
        "experiments.compress", "--config=configs/lenet_300_100.py:smoke",
        "--config.dataset=mnist", f"--config.data_dir={data_dir}",
    ]  # fmt: skip
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = run_entry_point(*base, f"--workdir={blocker}/w")
    assert_one_line_error(out, f"--workdir={blocker}/w", "cannot create")
    # A damaged checkpoint: the error names it and says deleting it recomputes the stage.
    workdir = tmp_path / "copy"
    shutil.copytree(lenet_run[0], workdir)
    shutil.rmtree(workdir / "report.json", ignore_errors=True)
    state = workdir / "checkpoints" / "3_shared" / "state"
    for path in sorted(state.rglob("*")):
        if path.is_file():
            path.write_bytes(b"\0" * 7)
    (workdir / "checkpoints" / "4_eie" / "meta.json").write_text("{trunc")
    out = run_entry_point(*base, f"--workdir={workdir}")
    assert_one_line_error(out, str(workdir / "checkpoints" / "3_shared"), "delete it")
    shutil.rmtree(workdir / "checkpoints" / "3_shared")
    out = run_entry_point(*base, f"--workdir={workdir}")
    assert_one_line_error(out, str(workdir / "checkpoints" / "4_eie"), "delete it")
    assert "[share/finetune] epoch" in out.stderr  # the deleted stage was recomputed


def test_help_documents_config_overrides_and_smoke():
    out = run_entry_point("experiments.compress", "--helpfull")
    text = " ".join(out.stdout.split())
    for needle in (
        ":smoke",
        "--config.<field>=<value>",
        "study's schema",
        "--validate_only",
        "resumable",
    ):
        assert needle in text, needle


@pytest.mark.slow
def test_lenet5_smoke_compresses_convs_and_runs_fcs_on_eie(tmp_path, data_dir):
    report = pipeline.train_and_evaluate(smoke_config(lenet5.get_config, data_dir), str(tmp_path))
    layers = report["layers"]
    assert list(layers) == ["conv1", "conv2", "fc1", "fc2"]
    assert "cycles" not in layers["conv1"] and layers["fc1"]["cycles"] > 0
    assert layers["conv1"]["codebook_bits"] == 8 and layers["fc1"]["codebook_bits"] == 4
    assert report["eie_equals_fixed_point"]


def test_bad_config_names_field_and_value():
    config = lenet_300_100.get_config("smoke")
    config.share.layer_bits = dict(fc9=4)
    with pytest.raises(UserError, match="share.layer_bits.fc9"):
        pipeline.validate_config(config)
    config = lenet_300_100.get_config("smoke")
    config.prune.update(schedule="iterative", rounds=3, epochs=4)
    with pytest.raises(UserError, match=r"prune.epochs=4: must be a multiple of prune.rounds=3"):
        pipeline.validate_config(config)


def test_rule_settings_have_defaults_on_the_command_line():
    """Every setting a registered rule reads is a field of the shipped config."""
    config = lenet_300_100.get_config("smoke")
    for key in prune.all_settings():
        assert key in config.prune, key


def test_missing_dataset_says_how_to_get_it(tmp_path):
    config = lenet_300_100.get_config("smoke")
    config.data_dir = str(tmp_path)
    with pytest.raises(UserError, match=str(tmp_path)):
        pipeline.train_and_evaluate(config, str(tmp_path / "w"))


@pytest.mark.slow
def test_interrupted_inside_the_pruning_stage_resumes_to_the_same_report(
    tmp_path, data_dir, monkeypatch
):
    """Iterative pruning, 2 rounds of 2 epochs, a checkpoint after every epoch: interrupted
    after round 2's first epoch, the rerun skips round 1 (restored), continues round 2 at
    its second epoch, and reports what an uninterrupted run reports."""
    config = smoke_config(lenet_300_100.get_config, data_dir)
    config.train.checkpoint_minutes = 0.0
    config.prune.update(schedule="iterative", rounds=2, epochs=4)
    reference = pipeline.train_and_evaluate(config, str(tmp_path / "reference"))

    saves = []
    original = checkpoint.save

    def save_then_interrupt(path, *args, **kwargs):
        out = original(path, *args, **kwargs)
        if path.endswith("2_pruned.partial"):
            saves.append(path)
            if len(saves) == 3:  # round 2 (call 1), after its first epoch
                raise KeyboardInterrupt
        return out

    workdir = tmp_path / "interrupted"
    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_and_evaluate(config, str(workdir))
    monkeypatch.setattr(checkpoint, "save", original)
    partial = workdir / "checkpoints" / "2_pruned.partial"
    assert checkpoint.read_meta(str(partial)) == dict(
        call=1, epochs=1, seconds=checkpoint.read_meta(str(partial))["seconds"]
    )
    resumed = pipeline.train_and_evaluate(config, str(workdir))
    assert not partial.exists()  # the finished stage's own checkpoint replaces it
    assert without_times(resumed) == without_times(reference)
