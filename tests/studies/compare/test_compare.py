"""experiments.compare: every method x quantiser on EIE; shared stages; the verdicts."""

import copy
import glob
import json
import os

import numpy as np
import pytest
from flax import nnx

from configs import compare_lenet_300_100
from eie_jax import models
from eie_jax.compression import prune
from eie_jax.compression.layers import FrozenCodebook, compressible_layers
from eie_jax.data import idx as data
from eie_jax.studies.compare import compare
from eie_jax.studies.compare import report as compare_report
from eie_jax.studies.compress import pipeline
from eie_jax.training import checkpoint
from eie_jax.utils import plotting
from tests.helpers import png_size, run_entry_point

METHODS = ("magnitude", "balanced", "n_m", "hw_loss")  # :smoke leaves out the scores ablation


def _smoke(data_dir="unused"):
    config = compare_lenet_300_100.get_config("smoke")
    config.base.dataset = "mnist"
    config.base.data_dir = data_dir
    return config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    workdir = str(tmp_path_factory.mktemp("compare"))
    cmd = [
        "experiments.compare",
        "--config=configs/compare_lenet_300_100.py:smoke", "--config.base.dataset=mnist",
        f"--config.base.data_dir={data_dir}", f"--workdir={workdir}",
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(workdir, "compare.json")) as f:
        return workdir, json.load(f), out.stderr, cmd


@pytest.mark.slow
def test_smoke_writes_the_table_with_every_method(smoke_run):
    workdir, result, log, _ = smoke_run
    rows = result["rows"]
    assert [(r["method"], r["quantizer"]) for r in rows] == [
        (m, q) for m in METHODS for q in ("kmeans", "linear")
    ]
    with open(os.path.join(workdir, "compare.md")) as f:
        table = f.read()
    for r in rows:
        assert f"| {r['label']} | {r['quantizer']} |" in table
        for n in ("64", "16"):
            e = r["eie"][n]
            assert e["cycles"] > 0 and 0 < e["load_efficiency"] <= e["load_efficiency_ceiling"]
            assert e["time_us"] == pytest.approx(e["cycles"] / 800.0)
            assert 0 <= e["padding_share"] < 1
        assert r["eie_equals_fixed_point"]
        assert r["compression_ratio"] > 1
        density = 0.5 if r["method"] == "n_m" else 0.09
        assert r["weights_kept"] == pytest.approx(density, abs=0.01)
    assert all("per_channel_int4_accuracy" in r for r in rows if r["quantizer"] == "linear")
    png = os.path.join(workdir, "accuracy_vs_cycles_64pes.png")
    assert png_size(png) == (840, 552)  # 7.0 x 4.6 inches at 120 dpi
    assert set(result["verdicts"]["hw_loss_vs_magnitude"]) == {"kmeans", "linear"}
    assert set(result["verdicts"]["kmeans_vs_linear"]) == set(METHODS)
    # The dense network is trained once, each method's pruned network once.
    assert log.count("[dense] epoch 1/") == 1
    assert log.count("2_pruned from") == 4  # each linear run starts from its k-means twin
    for line in ("[compare] run 1/8", "[compare] done 8/8", "[prune/scores]"):
        assert line in log


@pytest.mark.slow
def test_rerun_skips_finished_runs(smoke_run):
    workdir, result, _, cmd = smoke_run
    out = run_entry_point(*cmd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "epoch" not in out.stderr and "[eie]" not in out.stderr
    with open(os.path.join(workdir, "compare.json")) as f:
        again = json.load(f)
    assert again["rows"] == result["rows"]


@pytest.mark.slow
def test_other_pe_counts_time_like_the_full_simulation(smoke_run, data_dir):
    """cycles_on (timing only) at the run's own 64 PEs gives simulate()'s cycles."""
    workdir, result, _, _ = smoke_run
    (run_dir,) = glob.glob(os.path.join(workdir, "runs", "balanced-kmeans-*"))
    with open(os.path.join(run_dir, "report.json")) as f:
        report = json.load(f)
    model = models.get_model("lenet_300_100", rngs=nnx.Rngs(0))
    checkpoint.restore(os.path.join(run_dir, "checkpoints", "3_shared"), model)
    dataset = data.load_dataset("mnist", data_dir, validation_size=200, seed=0)
    inputs = compare.eie_inputs(model, dataset, report)
    for layer, cfg, active in inputs:
        run = compare.cycles_on(layer, cfg, active)
        entry = report["layers"][layer.name]
        assert run.vectors == len(active)
        assert run.per_vector(run.cycles) == pytest.approx(entry["cycles"], rel=1e-6)
        assert run.load_efficiency == pytest.approx(entry["load_efficiency"], rel=1e-5)
        assert (run.entries, run.padding) == (entry["eie_entries"], entry["eie_padding"])
    row = next(r for r in result["rows"] if r["name"] == "balanced-kmeans")
    assert row["broadcasts"] == [float(a.sum(axis=1).mean()) for _, _, a in inputs]
    sixteen = [compare.cycles_on(lay, cfg.replace(num_pes=16), a) for lay, cfg, a in inputs]
    per_input = sum(r.per_vector(r.cycles) for r in sixteen)
    assert row["eie"]["16"]["cycles"] == pytest.approx(per_input)


def test_runs_share_dense_and_pruned_stages():
    runs = compare.run_configs(_smoke())
    keys = [(r["method"], r["quantizer"], compare.stage_keys(r["config"])) for r in runs]
    assert len({k["dense"] for _, _, k in keys}) == 1
    pruned = {m: {k["pruned"] for mm, _, k in keys if mm == m} for m in METHODS}
    assert all(len(v) == 1 for v in pruned.values())
    assert len({next(iter(v)) for v in pruned.values()}) == len(METHODS)
    assert len({k["run"] for _, _, k in keys}) == len(runs)
    by_name = {(r["method"], r["quantizer"]): r["config"] for r in runs}
    assert by_name["balanced", "linear"].prune.structure == "balanced"
    assert by_name["hw_loss", "kmeans"].hw_loss.weight > 0
    assert by_name["n_m", "kmeans"].share.method == "kmeans"
    assert by_name["n_m", "linear"].share.method == "linear"


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.methods.magnitude.overrides.update(train=dict(epochs=3)), "magnitude.*train"),
        (lambda c: c.quantizers.linear.update(prune=dict(rounds=1)), "quantizers.linear.prune"),
        (
            lambda c: c.methods.balanced.overrides.update(prune=dict(rulez=1)),
            "methods.balanced.overrides.prune.rulez",
        ),
        (
            lambda c: c.methods.n_m.overrides.prune.update(learning_rate=-1.0),
            "prune.learning_rate",
        ),
        (lambda c: setattr(c, "num_pes", (64, 0)), "num_pes"),
        (lambda c: setattr(c, "order", ("magnitude",)), "config.order"),
        (lambda c: c.quantizers.linear.share.update(method="uniform"), "share.method='uniform'"),
        (
            lambda c: c.verdicts.hw_loss_vs_magnitude.update(baseline="nosuch"),
            "verdicts.hw_loss_vs_magnitude.baseline='nosuch'",
        ),
        (lambda c: c.verdicts.kmeans_vs_linear.update(kind="x"), "kmeans_vs_linear.kind='x'"),
        (lambda c: c.verdicts.kmeans_vs_linear.update(b="int3"), "kmeans_vs_linear.b='int3'"),
        (
            lambda c: c.verdicts.balanced_load_efficiency.update(abov=1.0),
            "balanced_load_efficiency.abov: unknown",
        ),
    ],
)
def test_bad_comparison_config_names_field(edit, match):
    config = _smoke()
    edit(config)
    with pytest.raises(ValueError, match=match):
        compare.run_configs(config)


def test_pareto_front():
    points = [(100, 80.0), (90, 79.0), (120, 85.0), (95, 78.0), (90, 79.0), (130, 84.0)]
    # (95, 78) is beaten by (90, 79); (130, 84) by (120, 85); the two (90, 79) tie.
    assert plotting.pareto_front(points) == [1, 4, 0, 2]


def _row(method, quantizer, cycles, acc, eff=0.5):
    e = dict(cycles=cycles, load_efficiency=eff, load_efficiency_ceiling=0.6)
    return dict(
        method=method,
        quantizer=quantizer,
        eie_accuracy=acc,
        compressed_accuracy=acc,
        quantized_accuracy=acc - 0.01,
        eie={"64": e},
    )


@pytest.mark.parametrize(
    "hw_cycles, hw_acc, met",
    [(80.0, 0.878, True), (81.0, 0.88, False), (70.0, 0.876, False), (60.0, 0.9, True)],
)
def test_verdicts_follow_the_targets(hw_cycles, hw_acc, met):
    config = _smoke()
    rows = [
        _row("magnitude", "kmeans", 100.0, 0.88),
        _row("hw_loss", "kmeans", hw_cycles, hw_acc),
        _row("balanced", "kmeans", 90.0, 0.87, eff=0.95),
        _row("balanced", "linear", 90.0, 0.86, eff=0.85),
    ]
    v = compare_report.verdicts(rows, config)
    assert v["hw_loss_vs_magnitude"]["kmeans"]["met"] is met
    assert v["hw_loss_vs_magnitude"]["kmeans"]["fewer_cycles"] == pytest.approx(1 - hw_cycles / 100)
    assert v["balanced_load_efficiency"]["kmeans"]["met"]
    assert not v["balanced_load_efficiency"]["linear"]["met"]
    assert v["kmeans_vs_linear"]["balanced"]["eie_points"] == pytest.approx(1.0)


def test_linear_quantiser_freezes_an_int4_grid_that_finetuning_keeps(data_dir):
    """share.method='linear': a per-layer symmetric int4 grid the fine-tuning cannot move;
    'kmeans': centroids that it does move (Deep Compression Sec. 3.3)."""
    base = _smoke(data_dir).base
    dataset = data.load_dataset("mnist", data_dir, validation_size=100, seed=0)
    model = models.get_model("lenet_300_100", rngs=nnx.Rngs(0))
    prune.prune_model(model, dict(sparsity=0.9))
    state = nnx.split(model)
    for method in ("linear", "kmeans"):
        config = copy.deepcopy(base)
        config.share.update(method=method, finetune_epochs=1)
        m = nnx.merge(*state, copy=True)
        pipeline.quantize(m, config)
        before = {n: np.asarray(layer.codebook[...]) for n, layer in compressible_layers(m)}
        pipeline.train(m, dataset, config, epochs=1, learning_rate=1e-2, stage="test/finetune")
        for name, layer in compressible_layers(m):
            book = np.asarray(layer.codebook[...])
            if method == "linear":
                assert isinstance(layer.codebook, FrozenCodebook)
                np.testing.assert_array_equal(book, before[name])
                step = book[-1] / 7  # levels -7..7 times one scale, code 0 = pruned
                np.testing.assert_allclose(book[1:], np.arange(-7, 8) * step, rtol=1e-6)
            else:
                assert not np.allclose(book, before[name])


def test_printed_targets_follow_an_overridden_target():
    """Override a target: the verdict and its printed target change together."""
    config = _smoke()
    config.verdicts.hw_loss_vs_magnitude.fewer_cycles = 0.1
    config.verdicts.balanced_load_efficiency.above = 0.96
    rows = [
        _row("magnitude", "kmeans", 100.0, 0.88),
        _row("hw_loss", "kmeans", 85.0, 0.88),  # 15 % fewer: met at 10 %, not at 20 %
        _row("balanced", "kmeans", 90.0, 0.87, eff=0.95),
    ]
    result = dict(num_pes=[64], fifo_depth=8, verdicts=compare_report.verdicts(rows, config))
    assert result["verdicts"]["hw_loss_vs_magnitude"]["kmeans"]["met"]
    assert not result["verdicts"]["balanced_load_efficiency"]["kmeans"]["met"]
    lines = compare_report.verdict_lines(result, config)
    (hw,) = [line for line in lines if line.startswith("- hw-loss vs magnitude (kmeans, 64 PEs)")]
    assert "15.0 % fewer cycles" in hw
    assert hw.endswith("(target: >= 10 % fewer cycles, >= -0.3 points): met.")
    (bal,) = [line for line in lines if line.startswith("- load-balanced (kmeans, 64 PEs")]
    assert bal.endswith("target > 0.96): NOT met.")
