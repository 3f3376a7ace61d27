"""Every entry point keeps the promise for a user's mistake: one line on stderr naming it,
exit status 2, no traceback, nothing trained; Ctrl-C is one line saying how to resume; the
LM study and generation take the workdir's lock and refuse another dense model's workdir."""

import os
import signal
import subprocess
import sys

import pytest

from configs import char_lstm
from eie_jax import sweep
from eie_jax.studies.lm import dense as lm_dense
from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError
from tests import synthetic, synthetic_text
from tests.helpers import ROOT, assert_one_line_error, run_entry_point


@pytest.mark.parametrize(
    "entry, args, needles",
    [
        ("compress", ["--config=configs/nope.py"], ["--config=configs/nope.py", "No such file"]),
        ("compress", ["--config=configs/lenet_300_100.py:bogus"], ["bogus", "allowed"]),
        (
            "compress",
            ["--config=configs/lenet_300_100.py", "--config.prune.sparsty=0.9"],
            ["--config.prune.sparsty", 'did you mean "sparsity"'],
        ),
        ("compress", ["--config=configs/lenet_300_100.py", "--config.seed=-1"], ["seed=-1"]),
        ("lm_compress", ["--config=configs/char_lstm.py", "--config.trian.steps=3"], ["trian"]),
        ("lm_compress", ["--config=configs/char_lstm.py", "--config.seed=-1"], ["seed=-1"]),
        (
            "lm_compress",
            ["--config=configs/char_lstm.py", "--config.train.learning_rate=nan"],
            ["train.learning_rate=nan"],
        ),
        ("generate", ["--config=configs/char_lstm.py:bogus"], ["bogus"]),
        (
            "generate",
            ["--config=configs/char_transformer.py", "--config.generate.temperature=nan"],
            ["temperature=nan"],
        ),
        ("fig_eie_vs_cpu", ["--config=configs/fig_eie_vs_cpu.py"], ["--workdir"]),
        ("bench_crossover", ["--config=configs/bench_crossover.py"], ["--workdir"]),
    ],
)
def test_mistakes_are_one_line_before_any_work(tmp_path, entry, args, needles):
    workdir = tmp_path / "w"
    extra = [] if entry in ("fig_eie_vs_cpu", "bench_crossover") else [f"--workdir={workdir}"]
    out = run_entry_point(f"experiments.{entry}", *args, *extra)
    assert_one_line_error(out, *needles)
    assert not workdir.exists() or not any(workdir.iterdir())  # nothing written


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic_text.write_corpus(str(tmp_path_factory.mktemp("texts")))


def _lm_args(corpus, workdir, *extra):
    return [
        "--config=configs/char_lstm.py:smoke", f"--config.data.data_dir={corpus}",
        "--config.data.validation_works=('beta',)", "--config.data.test_works=('gamma',)",
        "--config.generate.prompt=To", f"--workdir={workdir}", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("entry", ["lm_compress", "generate"])
def test_lm_entry_points_hold_the_workdir_lock(tmp_path, corpus, entry):
    workdir = str(tmp_path / "w")
    with workdirs.lock(workdir):  # another run holds it
        out = run_entry_point(f"experiments.{entry}", *_lm_args(corpus, workdir))
    assert_one_line_error(out, "is in use by another process")
    assert not os.path.exists(os.path.join(workdir, "dense"))


def test_lm_workdir_of_another_dense_model_is_refused(tmp_path, corpus):
    workdir = str(tmp_path / "w")
    config = char_lstm.get_config("smoke")
    config.data.update(data_dir=corpus, validation_works=("beta",), test_works=("gamma",))
    config.model_kwargs.hidden += 1  # the dense model in the workdir is another one
    with lm_dense.session(config, workdir):  # the workdir of another dense model
        pass
    out = run_entry_point("experiments.generate", *_lm_args(corpus, workdir))
    assert_one_line_error(out, "holds results of another config", "model_kwargs.hidden")
    assert not os.path.exists(os.path.join(workdir, "dense"))


def test_prompt_outside_the_vocabulary_is_refused_before_training(tmp_path, corpus):
    workdir = str(tmp_path / "w")
    out = run_entry_point(
        "experiments.generate", *_lm_args(corpus, workdir, "--config.generate.prompt=@")
    )
    assert_one_line_error(out, "config.generate.prompt", "'@'")
    assert not os.path.exists(os.path.join(workdir, "dense"))


def test_ctrl_c_is_one_line_saying_how_to_resume(tmp_path):
    data_dir = synthetic.write_idx_dataset(str(tmp_path / "idx"))
    # A pytest-xdist worker ignores SIGINT, and a child inherits that: a small launcher gives
    # the entry point SIGINT's default disposition back, as a shell does for its jobs.
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, '-m', 'experiments.compress', *sys.argv[1:]])"
    )
    cmd = [
        sys.executable, "-c", launcher, "--config=configs/lenet_300_100.py:smoke",
        "--config.dataset=mnist", f"--config.data_dir={data_dir}", "--config.prune.epochs=400",
        f"--workdir={tmp_path / 'w'}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # the log, line by line, until pruning is under way
        seen.append(line)
        if "[prune/gradual] epoch 2/400" in line:
            proc.send_signal(signal.SIGINT)
            break
    stderr = "".join(seen) + proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr[-2000:]
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert lines[-1] == "interrupted; rerun the same command to resume"
    assert "Traceback" not in stderr


def test_corpus_that_is_not_utf8_is_named_with_its_byte(tmp_path):
    texts = synthetic_text.write_corpus(str(tmp_path / "texts"))
    with open(os.path.join(texts, "delta_gut.txt"), "ab") as f:
        f.write("caf\xe9".encode("latin-1"))
    workdir = str(tmp_path / "w")
    out = run_entry_point("experiments.lm_compress", *_lm_args(texts, workdir))
    assert_one_line_error(out, "delta_gut.txt", "not UTF-8", "byte")
    assert not os.path.exists(workdir)


def test_damaged_lm_results_are_named_before_training(tmp_path, corpus):
    workdir = str(tmp_path / "w")
    workdirs.make(workdir)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        f.write('{"rows": [')  # torn
    out = run_entry_point("experiments.lm_compress", *_lm_args(corpus, workdir))
    assert_one_line_error(out, "results.json: damaged", "move it away")
    assert not os.path.exists(os.path.join(workdir, "dense"))


def test_missing_dataset_leaves_the_workdir_untouched(tmp_path):
    workdir = tmp_path / "w"
    out = run_entry_point(
        "experiments.compress", "--config=configs/lenet_300_100.py:smoke",
        "--config.dataset=mnist", f"--config.data_dir={tmp_path / 'none'}", f"--workdir={workdir}",
    )  # fmt: skip
    assert_one_line_error(out)
    assert not workdir.exists()  # the corrected command is not refused as "another config"


@pytest.mark.parametrize(
    "entry, args, needles",
    [
        ("llm_scale", ["--config=configs/llm_scale.py:smoke", "--config.shrink=0"], ["shrink=0"]),
        (
            "bench_crossover",
            ["--config=configs/bench_crossover.py:smoke", "--config.repeats=0"],
            ["repeats=0"],
        ),
        (
            "compare",
            ["--config=configs/compare_lenet_300_100.py:smoke", "--config.base.eie.num_pes=16"],
            ["config.base.eie.num_pes=16", "config.num_pes"],
        ),
        (
            "compare",
            ["--config=configs/compare_lenet_300_100.py:smoke", "--config.num_pes=(0,)"],
            ["config.num_pes"],
        ),
    ],
)
def test_bad_numbers_are_one_line_before_any_work(tmp_path, entry, args, needles):
    out = run_entry_point(f"experiments.{entry}", *args, f"--workdir={tmp_path / 'w'}")
    assert_one_line_error(out, *needles)


def test_empty_sweep_axis_is_refused():
    with pytest.raises(UserError, match="at least one value"):
        sweep.sweep("eie.num_pes", [])


# A typo inside a config FILE (not only on the command line) names the field and the
# closest one; the run stops before any work. Each file starts from a shipped config.
TYPO_CONFIGS = [  # entry point, shipped config, the misspelt field = value, the field meant
    ("compress", "lenet_300_100", "share.metod = 'linear'", "method"),
    ("compress", "lenet_300_100", "eie.num_pe = 16", "num_pes"),
    ("lm_compress", "char_lstm", "prune.sparsites = (0.5,)", "sparsities"),
    ("llm_scale", "llm_scale", "eie.fifo_dpeth = 4", "fifo_depth"),
    ("fig_eie_vs_cpu", "fig_eie_vs_cpu", "sed = 1", "seed"),
    ("bench_crossover", "bench_crossover", "repeat = 3", "repeats"),
    ("compare", "compare_lenet_300_100", "base.distill.wieght = 0.5", "weight"),
    ("sweep", "sweeps.fig8_fifo_depth", "eie.index_bit = 4", "index_bits"),
]


def _config_file(tmp_path, module, arg, line) -> str:
    """A config file of the user's: a shipped one with `line` added."""
    path = tmp_path / "my_config.py"
    sweep_part = (
        f"\n\ndef get_sweep(arg=None):\n    return base.get_sweep({arg!r})\n"
        if module.startswith("sweeps.")
        else ""
    )
    package, _, name = f"configs.{module}".rpartition(".")
    path.write_text(
        f"from {package} import {name} as base\n\n\ndef get_config(arg=None):\n"
        f"    config = base.get_config({arg!r})\n    {line}\n    return config\n{sweep_part}"
    )
    return str(path)


@pytest.mark.parametrize("entry, module, typo, meant", TYPO_CONFIGS)
def test_typo_inside_a_config_file_is_one_line(tmp_path, entry, module, typo, meant):
    workdir = tmp_path / "w"
    config = _config_file(tmp_path, module, "smoke", f"config.{typo}")
    field = typo.split(" = ")[0]
    message = f"config.{field}: no such field; did you mean {meant!r}?"
    out = run_entry_point(f"experiments.{entry}", f"--config={config}", f"--workdir={workdir}")
    assert_one_line_error(out, message)
    assert not workdir.exists()


# Every entry point that takes a config: --validate_only checks it and stops (exit 0,
# nothing written); a bad value there is the same one line as in a run.
VALIDATE_ONLY = [
    ("compress", "configs/lenet_300_100.py", "--config.prune.layers.fc1.sparsity=1.5"),
    ("compare", "configs/compare_lenet_300_100.py", "--config.num_pes=(0,)"),
    ("lm_compress", "configs/char_transformer.py", "--config.quantize.bits=(5,)"),
    ("generate", "configs/char_lstm.py", "--config.generate.sparsity=1.0"),
    ("llm_scale", "configs/llm_scale.py", "--config.sparsities=(0.9,0.5)"),
    ("fig_eie_vs_cpu", "configs/fig_eie_vs_cpu.py", "--config.eie.dram_gbps=-1.0"),
    ("bench_eie", "configs/eie_benchmarks.py", "--config.batch_layer=Alex-9"),
    ("bench_crossover", "configs/bench_crossover.py", "--config.densities=(0.0,)"),
    ("sweep", "configs/sweeps/fig11_pe_count.py", "--config.layer_scale=0.0"),
    ("sweep", "configs/sweeps/lenet_density_bits.py", "--config.share.bits=9"),
]


@pytest.mark.parametrize("entry, config, bad", VALIDATE_ONLY)
def test_validate_only_checks_the_config_and_stops(tmp_path, entry, config, bad):
    workdir = tmp_path / "w"
    args = [f"experiments.{entry}", f"--config={config}", f"--workdir={workdir}"]
    out = run_entry_point(*args, "--validate_only")
    assert out.returncode == 0 and out.stdout.strip().endswith("config ok"), out.stderr[-2000:]
    out = run_entry_point(*args, bad, "--validate_only")
    assert_one_line_error(out, bad.split("=")[0].lstrip("-"))
    assert not workdir.exists()


def test_config_file_that_is_not_python_is_one_line(tmp_path):
    config = _config_file(tmp_path, "lenet_300_100", "smoke", "config.seed = = 1")
    out = run_entry_point(
        "experiments.compress", f"--config={config}", f"--workdir={tmp_path / 'w'}"
    )
    assert_one_line_error(out, f"--config={config}: line 6: invalid syntax")


def test_eie_stage_too_big_for_memory_is_refused_before_training(tmp_path):
    workdir = tmp_path / "w"
    out = run_entry_point(
        "experiments.compress", "--config=configs/lenet_300_100.py", "--config.eie.num_pes=100000",
        f"--workdir={workdir}",
    )  # fmt: skip
    assert_one_line_error(out, "config.eie.num_pes=100000", "GiB of memory", "eie.batch_size")
    assert not workdir.exists()


def test_a_workdir_holds_one_kind_of_run(tmp_path):
    """A sweep's workdir refuses another entry point's run, and the other way round."""
    sweep_dir, scale_dir = tmp_path / "sweep", tmp_path / "scale"
    fig8 = ["experiments.sweep", "--config=configs/sweeps/fig8_fifo_depth.py:smoke", "--noplot"]
    scale = ["experiments.llm_scale", "--config=configs/llm_scale.py:smoke"]
    assert run_entry_point(*fig8, f"--workdir={sweep_dir}").returncode == 0
    assert run_entry_point(*scale, f"--workdir={scale_dir}").returncode == 0
    before = sorted(os.listdir(sweep_dir))
    assert_one_line_error(
        run_entry_point(*scale, f"--workdir={sweep_dir}"),
        "holds a sweep run's results, not a llm_scale",
    )
    assert_one_line_error(
        run_entry_point(*fig8, f"--workdir={scale_dir}"),
        "holds a llm_scale run's results, not a sweep",
    )
    assert sorted(os.listdir(sweep_dir)) == before


def test_lm_dense_training_resumes_inside_with_the_same_model(tmp_path, corpus, monkeypatch):
    """Checkpoints every log line; an interrupt after step 12 resumes from step 10 with the
    batch generator's state and the learning curve so far, to the model (and curve) of a
    run never interrupted."""
    import jax
    import numpy as np
    from flax import nnx

    from eie_jax.data import text

    config = char_lstm.get_config("smoke")
    config.data.update(data_dir=corpus, validation_works=("beta",), test_works=("gamma",))
    config.train.update(
        steps=20, log_every=5, checkpoint_minutes=0.0, max_minutes=0.0, curve_every=10
    )
    data = lm_study.load_corpus(config)
    whole, whole_meta = lm_dense.dense_model(config, data, str(tmp_path / "whole"))

    workdir = str(tmp_path / "cut")
    draws, draw = [0], text.train_batch

    def interrupted(*args):
        draws[0] += 1
        if draws[0] == 13:
            raise KeyboardInterrupt
        return draw(*args)

    monkeypatch.setattr(text, "train_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lm_dense.dense_model(config, data, workdir)
    assert os.path.isdir(os.path.join(workdir, "dense.partial"))
    monkeypatch.setattr(text, "train_batch", draw)
    resumed, meta = lm_dense.dense_model(config, data, workdir)
    assert not os.path.exists(os.path.join(workdir, "dense.partial"))
    assert meta["steps"] == whole_meta["steps"] == 20
    for key in ("test_nats", "validation_nats", "train_loss", "curve"):
        assert meta[key] == whole_meta[key], key
    assert [p["step"] for p in meta["curve"]] == [10, 20]  # the first from before the cut
    for a, b in zip(
        jax.tree_util.tree_leaves(nnx.state(whole, nnx.Param)),
        jax.tree_util.tree_leaves(nnx.state(resumed, nnx.Param)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_damaged_lm_dense_model_is_named_and_kept(tmp_path, corpus):
    workdir = str(tmp_path / "w")
    dense = run_entry_point("experiments.lm_compress", *_lm_args(corpus, workdir, "--dense_only"))
    assert dense.returncode == 0, dense.stderr[-2000:]
    meta = os.path.join(workdir, "dense", "meta.json")
    with open(meta, "w") as f:
        f.write('{"layout": ')  # torn
    for entry in ("lm_compress", "generate"):
        out = run_entry_point(f"experiments.{entry}", *_lm_args(corpus, workdir))
        assert_one_line_error(out, os.path.join(workdir, "dense"), "damaged")
    with open(meta) as f:
        assert f.read() == '{"layout": '  # nothing deleted or rewritten


def test_empty_sweep_axis_from_the_entry_point_is_one_line(tmp_path):
    path = tmp_path / "empty_axis.py"
    path.write_text(
        "from configs.sweeps import fig8_fifo_depth as base\n"
        "from eie_jax.sweep import sweep\n\n\n"
        "def get_config(arg=None):\n    return base.get_config(arg)\n\n\n"
        "def get_sweep(arg=None):\n    return sweep('eie.fifo_depth', [])\n"
    )
    workdir = tmp_path / "w"
    out = run_entry_point("experiments.sweep", f"--config={path}:smoke", f"--workdir={workdir}")
    assert_one_line_error(out, "eie.fifo_depth", "at least one value")
    assert not workdir.exists()
