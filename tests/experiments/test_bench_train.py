"""experiments.bench_train: the :smoke config end to end (both models' FLOPs, counted by XLA
with the LSTM's time steps unrolled, and positive rates beside the matmul's), and a bad
config as one line before any work."""

import json
import os

import pytest

from tests.helpers import assert_one_line_error, run_entry_point

SMOKE = "--config=configs/bench_train.py:smoke"
MODELS = {"char_transformer", "char_lstm"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench_train")
    out = run_entry_point("experiments.bench_train", SMOKE, f"--workdir={workdir}", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(workdir / "bench_train.json") as f:
        report = json.load(f)
    with open(workdir / "bench_train.md") as f:
        report["md"] = f.read()
    return report


@pytest.mark.slow
def test_smoke_measures_both_models_beside_the_matmul(report):
    rows = {row["name"]: row for row in report["models"]}
    assert set(rows) == MODELS
    assert report["matmul"]["flops"] == 2 * report["matmul"]["size"] ** 3
    assert report["matmul"]["gflops_per_s"] > 0
    for row in rows.values():
        flops = row["flops"]
        assert 0 < flops["forward"] < flops["backward"] < flops["step"], flops
        assert all(s > 0 for s in row["seconds"].values()), row["seconds"]
        assert row["chars_per_s"] > 0 and row["loop_chars_per_s"] > 0
        assert row["gflops_per_s"] > 0 and row["fraction_of_matmul"] > 0
        assert [p["phase"] for p in row["phases"]] == [
            "forward", "backward", "optimizer update", "nnx dispatch"
        ]  # fmt: skip
        assert sum(p["seconds"] for p in row["phases"]) == pytest.approx(
            row["seconds"]["trainer step"]
        )
        assert row["name"] in report["md"]
    assert rows["char_lstm"]["flops_counted"]["step"] == "lowered with scans unrolled"
    assert rows["char_transformer"]["flops_counted"]["step"] == "compiled"
    assert "float32 matmul 256 x 256" in report["md"] and "machine:" in report["md"]


def _matmul_flops(row, vocab) -> float:
    """The forward's matrix products, 2 * rows * inputs * outputs each, counted by hand."""
    kw = row["config"]["model_kwargs"]
    n = row["batch_size"] * row["context"]
    if row["model"] == "char_lstm":
        h = kw["hidden"]
        ins = [kw["embed_dim"]] + [h] * (kw["num_layers"] - 1)
        return sum(2 * n * (i + h) * 4 * h for i in ins) + 2 * n * h * vocab
    d, t = kw["d_model"], row["context"]
    layer = 2 * n * d * (4 * d + 2 * kw["d_mlp"]) + 2 * 2 * n * t * d  # + QK^T and AV
    return kw["num_layers"] * layer + 2 * n * d * vocab


@pytest.mark.slow
def test_flops_count_every_product_and_time_step(report):
    """XLA counts a loop body once; the LSTM's count must still cover all its time steps."""
    for row in report["models"]:
        row = dict(row, config=report["config"]["models"][row["name"]])
        by_hand = _matmul_flops(row, report["config"]["vocab_size"])
        assert by_hand <= row["flops"]["forward"] <= 1.5 * by_hand, (row["name"], by_hand)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--config.repeats=0"], ["config.repeats=0", "an int >= 1"]),
        (["--config.models.char_lstm.model=gru"], ["config.models.char_lstm.model='gru'"]),
        (["--config.models.char_transformer.context=32"], ["config.models.char_transformer"]),
        (["--config.text_chars=10"], ["config.text_chars=10"]),
        (["--config.models.char_lstm.batch_sise=3"], ["batch_sise", "batch_size"]),
    ],
)
def test_bad_config_is_one_line_before_any_work(tmp_path, args, needles):
    workdir = tmp_path / "w"
    out = run_entry_point("experiments.bench_train", SMOKE, *args, f"--workdir={workdir}")
    assert_one_line_error(out, *needles)
    assert not os.path.exists(workdir)


def test_validate_only_checks_the_full_config():
    out = run_entry_point(
        "experiments.bench_train", "--config=configs/bench_train.py", "--workdir=/nonexistent/w",
        "--validate_only",
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip().endswith("config ok"), out.stderr[-2000:]
