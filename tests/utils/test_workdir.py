"""eie_jax/utils/workdir.py: the config check, the lock and the override merger of every workdir."""

import json
import os

import ml_collections
import pytest

from eie_jax.utils import workdir
from eie_jax.utils.cli import UserError


def _config():
    return ml_collections.ConfigDict(
        dict(seed=0, lr=0.1, prune=dict(rule=dict(rule="sparsity", sparsity=0.9), rounds=2))
    )


def test_check_same_config_records_then_refuses_naming_fields(tmp_path):
    path = str(tmp_path / "run")
    workdir.check_same_config(path, _config(), "config.json")
    with open(os.path.join(path, "config.json")) as f:
        assert json.load(f)["prune"]["rule"]["sparsity"] == 0.9
    workdir.check_same_config(path, _config(), "config.json")  # the same config resumes
    changed = _config()
    changed.prune.rule.sparsity = 0.8
    changed.seed = 3
    with pytest.raises(UserError) as e:
        workdir.check_same_config(path, changed, "config.json")
    assert str(e.value) == (
        f"--workdir={path} holds results of another config (config.json differs: "
        "prune.rule.sparsity: 0.9 -> 0.8; seed: 0 -> 3); use a new --workdir or delete that one"
    )
    # Ignored fields may change, and the file follows them.
    workdir.check_same_config(path, workdir.apply_overrides(_config(), {"lr": 1.0}), ignore=["lr"])
    with open(os.path.join(path, "config.json")) as f:
        assert json.load(f)["lr"] == 1.0


def test_lock_refuses_a_second_holder_and_is_released(tmp_path):
    path = str(tmp_path / "w")
    with workdir.lock(path):
        with pytest.raises(UserError, match=f"--workdir={path} is in use by another process"):
            with workdir.lock(path):
                pass
    with workdir.lock(path):  # released on exit
        pass


def test_processes_of_one_run_lock_side_by_side(tmp_path):
    """Process 0 holds .lock and process i > 0 holds .lock.<i>: the processes of one
    multi-process run share the workdir, two processes with one id do not."""
    path = str(tmp_path / "w")
    with workdir.lock(path, 0), workdir.lock(path, 1), workdir.lock(path, 2):
        with pytest.raises(UserError, match=f"--workdir={path} is in use by another process 1 "):
            with workdir.lock(path, 1):
                pass
    assert sorted(os.listdir(path)) == [".lock", ".lock.1", ".lock.2"]


def test_unusable_workdir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=f"--workdir={blocker}/sub: cannot create it"):
        workdir.make(str(blocker / "sub"))


def test_apply_overrides_dotted_and_nested():
    base = _config()
    out = workdir.apply_overrides(base, {"prune.rounds": 4, "prune": {"rule": {"sparsity": 0.5}}})
    assert (out.prune.rounds, out.prune.rule.sparsity, out.prune.rule.rule) == (4, 0.5, "sparsity")
    assert (base.prune.rounds, base.prune.rule.sparsity) == (2, 0.9)  # base untouched


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"prune.foo": 1},
            "m.prune.foo: no field 'foo' under m.prune; fields there: ['roun",
        ),
        ({"prune": {"rule": {"sparsity": "high"}}}, "m.prune.rule.sparsity='high': "),
        ({"seed": 0.5}, "m.seed=0.5: "),
    ],
)
def test_apply_overrides_names_the_bad_field(overrides, message):
    with pytest.raises(UserError) as e:
        workdir.apply_overrides(_config(), overrides, "m")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_fingerprint_depends_on_values_not_key_order():
    assert workdir.fingerprint({"a": 1, "b": [1, 2]}) == workdir.fingerprint({"b": [1, 2], "a": 1})
    assert workdir.fingerprint({"a": 1}) != workdir.fingerprint({"a": 2})
    assert len(workdir.fingerprint({"a": 1}, 12)) == 12
