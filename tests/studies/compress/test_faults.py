"""Faults that are not in the config: a damaged checkpoint, a full or read-only disk.

Each is one line on stderr naming the file and what to do, exit status 2: no traceback, and
none of the pages orbax prints of its own when it gives up. A write the disk refused leaves
the file or checkpoint that was there intact and no temporary file behind, and the same
command, rerun, resumes to the report of a run that never failed. Tests run as root, whom
file modes do not stop: the disk's refusals are injected (os.replace, orbax's save).
"""

import errno
import gc
import json
import os
import re
import shutil
import sys
import time

import orbax.checkpoint as ocp
import pytest

from configs import lenet_300_100
from eie_jax.studies.compress import pipeline
from eie_jax.training import checkpoint
from eie_jax.utils import cli as errors
from eie_jax.utils import workdir as workdirs
from tests.helpers import run_entry_point, smoke_config, without_times

INFO_LINE = re.compile(r"I\d{4} ")  # absl's log of the stages before the error


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """An uninterrupted smoke run, in-process: its workdir and its report."""
    workdir = str(tmp_path_factory.mktemp("finished"))
    config = smoke_config(lenet_300_100.get_config, data_dir)
    return workdir, pipeline.train_and_evaluate(config, workdir)


def _copy_without(finished, workdir, *stages) -> str:
    """A copy of the finished workdir without its report and these stages' checkpoints: a
    rerun resumes the stages before them and runs these again."""
    shutil.copytree(finished[0], workdir)
    os.remove(os.path.join(workdir, "report.json"))
    for stage in stages:
        shutil.rmtree(os.path.join(workdir, "checkpoints", stage))
    return str(workdir)


def _damage(ckpt) -> None:
    """Garbage for the array metadata: orbax gives up with the arrays' reads in flight."""
    metadata = os.path.join(ckpt, "state", "array_metadatas")
    for name in os.listdir(metadata):
        path = os.path.join(metadata, name)
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            f.write(b"\xff" * size)


def test_damaged_checkpoint_is_one_line_without_orbax_tracebacks(tmp_path, finished, data_dir):
    workdir = _copy_without(finished, tmp_path / "w", "4_eie")
    ckpt = os.path.join(workdir, "checkpoints", "3_shared")
    _damage(ckpt)
    out = run_entry_point(
        "experiments.compress", "--config=configs/lenet_300_100.py:smoke",
        "--config.dataset=mnist", f"--config.data_dir={data_dir}", f"--workdir={workdir}",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert [x for x in lines if not INFO_LINE.match(x)] == lines[-1:], out.stderr[-3000:]
    assert lines[-1].startswith(f"error: checkpoint {ckpt} is damaged"), lines[-1]
    assert "delete it to recompute that stage" in lines[-1]


def test_failed_restore_leaves_nothing_to_print(tmp_path, finished, monkeypatch, caplog):
    """In-process, where the leftovers of orbax's failed restores can be waited for: its
    reads complete onto its closed event loop, and their coroutines are collected."""
    leftovers = []
    monkeypatch.setattr(sys, "unraisablehook", leftovers.append)
    ckpt = str(tmp_path / "3_shared")
    shutil.copytree(os.path.join(finished[0], "checkpoints", "3_shared"), ckpt)
    _damage(ckpt)
    config = lenet_300_100.get_config("smoke")
    for _ in range(3):
        with pytest.raises(errors.UserError, match="is damaged"):
            checkpoint.restore(ckpt, pipeline.build_model(config.model, config.seed))
        time.sleep(0.2)
        gc.collect()
    assert leftovers == []
    assert not [r for r in caplog.records if "orbax" in r.pathname or r.name == "asyncio"]


def _run_main(config, workdir):
    """pipeline.train_and_evaluate as the entry point runs it (`errors.run_main`)."""
    errors.run_main(lambda argv: pipeline.train_and_evaluate(config, workdir))(["compress"])


def _assert_one_line(capsys, caught, expected):
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert [x for x in err.splitlines() if x.strip()] == [expected], err[-3000:]


def test_full_disk_in_a_stage_keeps_its_last_checkpoint_and_the_rerun_resumes(
    tmp_path, finished, data_dir, monkeypatch, capsys
):
    """Pruning checkpoints after every epoch; the disk is full when the second one replaces
    the first: one line, the first kept, and the rerun goes on from it to the same report."""
    config = smoke_config(lenet_300_100.get_config, data_dir)
    config.train.checkpoint_minutes = 0.0
    workdir = _copy_without(finished, tmp_path / "w", "2_pruned", "3_shared", "4_eie")
    partial = os.path.join(workdir, "checkpoints", "2_pruned.partial")
    replace, saves = os.replace, []

    def full_disk(src, dst, **kwargs):
        if dst == partial and src == partial + ".tmp":
            saves.append(src)
            if len(saves) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src, None, dst)
        return replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SystemExit) as caught:
        _run_main(config, workdir)
    monkeypatch.setattr(os, "replace", replace)
    _assert_one_line(
        capsys, caught,
        f"error: cannot write {partial} (No space left on device); free space and rerun the "
        "same command to resume",
    )  # fmt: skip
    assert checkpoint.read_meta(partial)["epochs"] == 1  # the first, intact
    assert sorted(os.listdir(os.path.dirname(partial))) == ["1_dense", "2_pruned.partial"]
    report = pipeline.train_and_evaluate(config, workdir)
    assert without_times(report) == without_times(finished[1])
    with open(os.path.join(workdir, "report.json")) as f:
        assert without_times(json.load(f)) == without_times(finished[1])


@pytest.mark.parametrize(
    "code, fix", [(errno.ENOSPC, "free space"), (errno.EROFS, "make it writable")]
)
def test_disk_refusing_a_checkpoint_is_one_line_and_the_rerun_resumes(
    tmp_path, finished, data_dir, monkeypatch, capsys, code, fix
):
    """orbax reports the disk's refusal as tensorstore's ValueError with the system's words."""
    config = smoke_config(lenet_300_100.get_config, data_dir)
    workdir = _copy_without(finished, tmp_path / "w", "3_shared", "4_eie")
    ckpt = os.path.join(workdir, "checkpoints", "3_shared")
    save = ocp.StandardCheckpointer.save

    def refused(self, directory, *args, **kwargs):
        if str(directory).startswith(ckpt):
            raise ValueError(
                f'RESOURCE_EXHAUSTED: Error writing local file "{directory}/_sharding": '
                f"Failed to write 1189 bytes to file 5: {os.strerror(code)} [source locations]"
            )
        return save(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", refused)
    with pytest.raises(SystemExit) as caught:
        _run_main(config, workdir)
    monkeypatch.setattr(ocp.StandardCheckpointer, "save", save)
    _assert_one_line(
        capsys, caught,
        f"error: cannot write {ckpt} ({os.strerror(code)}); {fix} and rerun the same command "
        "to resume",
    )  # fmt: skip
    assert sorted(os.listdir(os.path.dirname(ckpt))) == ["1_dense", "2_pruned"]  # no 3_shared.tmp
    report = pipeline.train_and_evaluate(config, workdir)
    assert without_times(report) == without_times(finished[1])


def test_refused_config_json_is_one_line(tmp_path, data_dir, monkeypatch, capsys):
    config = smoke_config(lenet_300_100.get_config, data_dir)
    workdir = str(tmp_path / "w")
    replace = os.replace

    def refused(src, dst, **kwargs):
        if dst.endswith("config.json"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src, None, dst)
        return replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(SystemExit) as caught:
        _run_main(config, workdir)
    _assert_one_line(
        capsys, caught,
        f"error: cannot write {workdir}/config.json (Permission denied); make it writable and "
        "rerun the same command to resume",
    )  # fmt: skip
    assert not [n for n in os.listdir(workdir) if n.startswith("config.json")]  # no *.tmp


@pytest.mark.parametrize("fault", ["replace", "dump"])
def test_write_json_atomic_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, fault):
    path = str(tmp_path / "results.json")
    workdirs.write_json_atomic(path, {"rows": [1]})
    if fault == "replace":

        def full_disk(src, dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src, None, dst)

        monkeypatch.setattr(os, "replace", full_disk)
        with pytest.raises(OSError) as caught:
            workdirs.write_json_atomic(path, {"rows": [1, 2]})
        assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, path)
    else:  # the value does not serialize: a bug, its own exception
        with pytest.raises(TypeError):
            workdirs.write_json_atomic(path, {"rows": [object()]})
    with open(path) as f:
        assert json.load(f) == {"rows": [1]}
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize(
    "error, line",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/w/report.json"),
            "cannot write /w/report.json (No space left on device); free space and rerun the "
            "same command to resume",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/w/a.tmp", None, "/w/a"),
            "cannot write /w/a (Disk quota exceeded); free space and rerun the same command to "
            "resume",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/w/report.md"),
            "cannot write /w/report.md (Read-only file system); make it writable and rerun the "
            "same command to resume",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),  # a write that failed on flush
            "cannot write to disk (No space left on device); free space and rerun the same "
            "command to resume",
        ),
    ],
)
def test_run_main_makes_a_refused_write_one_line(capsys, error, line):
    def main(argv):
        raise error

    with pytest.raises(SystemExit) as caught:
        errors.run_main(main)(["x"])
    _assert_one_line(capsys, caught, f"error: {line}")


def test_run_main_keeps_the_traceback_of_other_os_errors():
    def main(argv):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/w/x")

    with pytest.raises(FileNotFoundError):
        errors.run_main(main)(["x"])
