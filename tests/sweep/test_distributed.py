"""Sweeps over several processes (jax.distributed on CPU, 127.0.0.1): the same results as one
process, each point once after a kill and a relaunch, and the merged reader."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from eie_jax import sweep as sw
from eie_jax.sweep import multihost
from eie_jax.utils.cli import UserError
from tests import synthetic
from tests.helpers import FIG8_SMOKE, ROOT, train_axes, train_config

LENET_SMOKE = "configs/sweeps/lenet_density_bits.py:smoke"
# The training smoke cut to the bone: one epoch per stage on a few hundred synthetic images.
TINY_TRAINING = {
    "dataset": "mnist",
    "validation_size": 64,
    "prune.epochs": 1,
    "eie.calibration_size": 64,
    "eie.batch_size": 64,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(*paths):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([ROOT, *paths]))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def _launch(config, workdir, overrides=(), processes=2, env=None):
    """`experiments.sweep` in `processes` processes joined on a fresh 127.0.0.1 port."""
    port = _free_port()
    cmd = [sys.executable, "-m", "experiments.sweep", f"--config={config}"]
    cmd += [f"--workdir={workdir}", "--noplot", *overrides]
    cmd += [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}"]
    return [
        subprocess.Popen(
            [*cmd, f"--process_id={i}"],
            cwd=ROOT,
            env=env or _env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]


def _wait(procs, timeout=240):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [err for _, err in outs]


def _without_seconds(records):
    """Records without wall-clock fields, the only ones that differ between runs."""
    return [
        dict(r, metrics={k: v for k, v in r["metrics"].items() if k != "seconds"}) for r in records
    ]


@pytest.mark.slow
def test_two_processes_give_the_one_process_results(tmp_path):
    """fig8 :smoke (EIE points sharded over both processes' devices, written by process 0)
    and the LeNet training sweep's :smoke (one point per process) equal one-process runs;
    the training points reach their target densities (the training sweep's own test)."""
    data_dir = synthetic.write_idx_dataset(str(tmp_path / "idx"), n_train=256, n_test=64)
    training = dict(TINY_TRAINING, data_dir=data_dir)
    flags = [f"--config.{field}={value}" for field, value in training.items()]
    eie_procs = _launch(FIG8_SMOKE, tmp_path / "two_eie")
    train_procs = _launch(LENET_SMOKE, tmp_path / "two_train", flags)

    # The one-process runs, here, while the two-process runs go on.
    config, axes = sw.load_sweep_file(os.path.join(ROOT, FIG8_SMOKE))
    one_eie = sw.run_sweep(config, axes, str(tmp_path / "one_eie"))
    config, axes = sw.load_sweep_file(os.path.join(ROOT, LENET_SMOKE))
    one_train = sw.run_sweep(sw.apply_overrides(config, training), axes, str(tmp_path / "one"))

    _wait(eie_procs + train_procs)
    assert sw.load_results(str(tmp_path / "two_eie")) == one_eie
    assert len(one_eie) == 12  # 2 layers x 3 depths x 2 timings
    names = [os.path.basename(p) for p in sw.results_files(str(tmp_path / "two_eie"))]
    assert names == ["results.0.jsonl"]  # process 0 wrote every EIE point
    two_train = sw.load_results(str(tmp_path / "two_train"))
    assert _without_seconds(two_train) == _without_seconds(one_train)
    assert len(one_train) == 2
    kept = sorted(r["metrics"]["weights_kept"] for r in one_train)
    assert kept == pytest.approx([0.08, 0.2], abs=2e-3)  # the target densities were applied
    assert all(r["metrics"]["compression_ratio"] > 1 for r in one_train)
    for process, index in [(0, 0), (1, 1)]:  # point i trained by process i mod 2
        path = tmp_path / "two_train" / sw.RESULTS_FILE.format(process=process)
        assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [index]


KILLABLE_SWEEP = """
from eie_jax.sweep import product, sweep
from tests.helpers import train_config
def get_config(arg=None):
    return train_config()
def get_sweep(arg=None):
    return product(sweep("a", [1, 2, 3, 4, 5]), sweep("b.d.e", ["p", "q"]))
"""


def _lines(workdir):
    out = []
    for path in sw.results_files(str(workdir)):
        with open(path) as f:
            out += [json.loads(line) for line in f if line.endswith("\n")]
    return out


@pytest.mark.slow
def test_kill_one_of_two_processes_then_relaunch_both(tmp_path, fake_train):
    """Kill process 1 mid-sweep (process 0 goes on, then is killed too), relaunch both: every
    point appears exactly once over the two results files, and none is trained twice."""
    config_file = tmp_path / "killable.py"
    config_file.write_text(textwrap.dedent(KILLABLE_SWEEP))
    workdir = tmp_path / "run"
    env = dict(_env(str(fake_train)), FAKE_TRAIN_SLEEP="0.5")
    procs = _launch(config_file, workdir, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(_lines(workdir)) < 2:
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.05)
    children = _children(procs[0].pid) | _children(procs[1].pid)  # the trainer children
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    time.sleep(0.6)  # process 0 trains on alone for a while
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if _running(pid)]  # none trains on, orphaned
    before = _lines(workdir)
    assert 2 <= len(before) < 10
    assert len({r["index"] for r in before}) == len(before)

    env["FAKE_TRAIN_SLEEP"] = "0"
    errs = _wait(_launch(config_file, workdir, env=env))
    assert all(f"10 points, {len(before)} already done" in err for err in errs)
    after = _lines(workdir)
    assert sorted(r["index"] for r in after) == list(range(10))  # none lost, none twice
    for r in after:
        assert r["metrics"]["score"] == r["overrides"]["a"] * 10
    assert [r for r in after if r["index"] in {b["index"] for b in before}] == before


def _children(pid: int) -> set[int]:
    """Process ids whose parent is pid (Linux /proc; empty elsewhere)."""
    found = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.split("/")[2]))
    return found


def _running(pid: int) -> bool:
    """pid exists and is not a zombie (an exited child its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_one_process_resumes_what_two_left(tmp_path, fake_train):
    """Points finished by any process, in any results file, are not redone after a change
    in the number of processes; a partial line in another process's file is left alone."""
    import fake_train_mod

    workdir = str(tmp_path / "run")
    points = sw.expand(train_config(), train_axes())
    sw.ResultStore(workdir, 0).open(train_config(), points)
    for process in (0, 1):  # what two processes had done: points 0 and 1, 3 by process 1
        done = [i for i in multihost.share(range(4), process, 2) if i != 2]
        sw.ResultStore(workdir, process).append(
            [{"index": i, "overrides": points[i], "metrics": {"score": -1}} for i in done]
        )
    partial = os.path.join(workdir, sw.RESULTS_FILE.format(process=1))
    with open(partial, "a") as f:
        f.write('{"index": 4, "overr')
    records = sw.run_sweep(train_config(), train_axes(), workdir)
    assert [r["index"] for r in records] == list(range(6))
    assert fake_train_mod.CALLS == [2, 3, 3]  # points 2, 4 and 5 only (a = 2, 3, 3)
    assert [r["metrics"]["score"] for r in records[:2]] == [-1, -1]
    with open(partial) as f:
        assert f.read().endswith('"overr')  # not this process's file: not truncated


@pytest.mark.parametrize("process, processes, expect", [(0, 2, [0, 2, 4]), (1, 2, [1, 3])])
def test_share_splits_by_index(process, processes, expect):
    assert multihost.share(range(5), process, processes) == expect


def test_bad_process_id_is_one_line():
    with pytest.raises(UserError, match=r"^--process_id=2: must be in \[0, --num_processes=2\)$"):
        multihost.initialize("127.0.0.1:1", 2, 2)
