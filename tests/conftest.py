"""Shared pytest set-up: run JAX on the CPU, quietly, whatever the machine has.

XLA's persistent compilation cache is on for the run, in a fresh directory that the run
deletes at its end: a test that starts an entry point in a subprocess, or reruns one, finds
the programs an earlier test compiled instead of compiling them again. Every run starts
with an empty cache, so the suite's time is a cold run's. The variables reach the pytest-xdist
workers and the subprocesses the tests start (JAX reads them when it is imported).

The fixtures several folders use: `data_dir` (synthetic IDX files) and `fake_train` (a
training function for sweeps). Shared functions and constants are in tests/helpers.py.
"""

import os
import shutil
import sys
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="eie-jax-xla-cache-")
    os.environ["EIE_JAX_TEST_CACHE_OWNER"] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def pytest_unconfigure(config):
    """The process that made the cache directory deletes it (the xdist controller)."""
    if os.environ.get("EIE_JAX_TEST_CACHE_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Files with slow tests first, each file's tests in their order.

    make test runs `pytest -n 2 --dist loadfile --no-loadscope-reorder`: a file's tests run
    in one worker, so a module-scoped fixture (one entry-point run that several tests read)
    is built once, and the long files start first while the short ones fill in at the end
    (xdist would otherwise reorder the files by their number of tests, most first).
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Synthetic MNIST-format IDX files, written once for the module that asks for them."""
    from tests import synthetic  # imports eie_jax: after the settings above

    return synthetic.write_idx_dataset(str(tmp_path_factory.mktemp("idx")))


# The training function of tests.helpers.train_config's sweeps: records the points it trains
# (CALLS), fails at call FAKE_TRAIN_FAIL_AT, sleeps FAKE_TRAIN_SLEEP seconds a point.
FAKE_TRAIN = """
import os, time
CALLS = []
def train(config):
    CALLS.append(config.a)
    limit = int(os.environ.get("FAKE_TRAIN_FAIL_AT", "-1"))
    if len(CALLS) == limit:
        raise RuntimeError("interrupted")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    return {"score": config.a * 10 + config.b.c, "echo": config.b.d.e}
"""


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """The folder of the module fake_train_mod (FAKE_TRAIN), importable here; a child
    process imports it with the folder on its PYTHONPATH."""
    mod_dir = tmp_path / "mod"
    mod_dir.mkdir()
    (mod_dir / "fake_train_mod.py").write_text(FAKE_TRAIN)
    monkeypatch.syspath_prepend(str(mod_dir))
    sys.modules.pop("fake_train_mod", None)
    yield mod_dir
    sys.modules.pop("fake_train_mod", None)
