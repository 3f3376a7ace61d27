"""What several test modules share: the project's root, an entry point run as a user runs it,
the one-line error a user's mistake gives, the smoke configs, report comparison, a written
PNG's size, and the small sweeps that tests and the child processes they start both load
(`from tests.helpers import train_config` in a sweep config file)."""

import json
import os
import struct
import subprocess
import sys

import ml_collections

from eie_jax import sweep as sw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIG8_SMOKE = "configs/sweeps/fig8_fifo_depth.py:smoke"


# ----------------------------------------------------------------------------- entry points


def run_entry_point(*args, timeout=300):
    """`python -m <args>` from the project's root, its output captured: a CompletedProcess.

    The command runs in a process forked from the child interpreter `_ENTRY_POINTS`, which
    has imported jax, flax, orbax and eie_jax once (without starting a JAX backend, so the
    fork is safe): the process runs the module as `python -m` does (runpy, __main__, its
    own argv, stdin /dev/null), in this process's environment at the server's start, and
    costs its own work instead of another JAX import. Where os.fork is missing, or for a
    command that needs another environment, use subprocess.run directly."""
    if not hasattr(os, "fork"):
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    global _SERVER
    if _SERVER is None or _SERVER.poll() is not None:
        _SERVER = subprocess.Popen(
            [sys.executable, "-c", _ENTRY_POINTS], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    _SERVER.stdin.write(json.dumps([list(args), timeout]) + "\n")
    _SERVER.stdin.flush()
    line = _SERVER.stdout.readline()
    if not line:
        raise RuntimeError(f"run_entry_point's server ended (exit {_SERVER.wait()})")
    code, out, err = json.loads(line)
    if code is None:
        raise subprocess.TimeoutExpired(["python", "-m", *args], timeout, out, err)
    return subprocess.CompletedProcess(["python", "-m", *args], code, out, err)


_SERVER = None

# The child interpreter of run_entry_point: one JSON line in per command ([args, timeout]),
# one out ([exit status or None on timeout, stdout, stderr]).
_ENTRY_POINTS = r"""
import atexit, importlib, json, os, pkgutil, runpy, sys, tempfile, threading, time, traceback
import eie_jax
for name in ["jax", "flax.nnx", "optax", "orbax.checkpoint", "ml_collections.config_flags",
             "absl.app", "matplotlib.pyplot"] + [
             m.name for m in pkgutil.walk_packages(eie_jax.__path__, "eie_jax.")]:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the command imports what it needs
reply = sys.stdout
for line in sys.stdin:
    args, timeout = json.loads(line)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    reply.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0); os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        sys.stdin = open(os.devnull)
        sys.argv = [args[0].replace(".", "/") + ".py", *args[1:]]
        code = 0
        try:
            runpy.run_module(args[0], run_name="__main__", alter_sys=True)
        except SystemExit as e:  # as the interpreter reads it
            code = e.code if isinstance(e.code, int) else e.code is not None
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        # the end of `python -m`, less the teardown of every module (seconds in a fork):
        # wait for non-daemon threads, run the atexit functions (logging's flush among them)
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(int(code))
    deadline, code = time.time() + timeout, None
    while code is None and time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        else:
            time.sleep(0.005)
    if code is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    texts = []
    for f in (out, err):
        f.seek(0)
        texts.append(f.read().decode(errors="replace"))
        f.close()
    reply.write(json.dumps([code, *texts]) + "\n")
    reply.flush()
"""


def assert_one_line_error(out, *needles):
    """A user's mistake: exit status 2, one line on stderr naming what is wrong (the last:
    the progress log of any stage that ran comes before it), no traceback."""
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error: ")]
    assert errors == lines[-1:] and "Traceback" not in out.stderr, out.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


# ----------------------------------------------------------------------------- the compress study


def smoke_config(get_config, data_dir):
    """A compress config's :smoke variant on the synthetic IDX files in data_dir."""
    config = get_config("smoke")
    config.dataset = "mnist"
    config.data_dir = data_dir
    return config


def without_times(report):
    """A report without the fields that differ between two runs of one config."""
    return {k: v for k, v in report.items() if k not in ("seconds", "config")}


# ----------------------------------------------------------------------------- files


def png_size(path) -> tuple[int, int]:
    """(width, height) of the PNG at path, after checking its signature and header chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", (path, head[:8])
    assert head[12:16] == b"IHDR", (path, head[12:16])
    return struct.unpack(">II", head[16:24])


# ----------------------------------------------------------------------------- small sweeps


def base_config():
    """A config of three fields, one a nested group: what the sweep expander works on."""
    config = ml_collections.ConfigDict()
    config.a = 0
    config.b = ml_collections.ConfigDict(dict(c=0.0, d=ml_collections.ConfigDict(dict(e="x"))))
    return config


def train_config():
    """base_config as a training sweep, its train_fn the `fake_train` fixture's module."""
    config = base_config()
    config.runner = "train"
    config.train_fn = "fake_train_mod:train"
    config.plots = [dict(x="a", y="score", series="b.d.e", name="score.png")]
    return config


def train_axes():
    """Six training points: a in 1..3 by b.d.e in p, q."""
    return sw.product(sw.sweep("a", [1, 2, 3]), sw.sweep("b.d.e", ["p", "q"]))


def small_eie_config():
    """The fig8 sweep's :smoke config: EIE points on small layers."""
    config, _ = sw.load_sweep_file(os.path.join(ROOT, FIG8_SMOKE))
    return config


def small_eie_axes():
    """Twelve EIE points: two layers, three PE counts, two FIFO depths."""
    return sw.product(
        sw.sweep("layer", ["NT-LSTM", "Alex-8"]),
        sw.sweep("eie.num_pes", [1, 3, 8]),
        sw.sweep("eie.fifo_depth", [1, 4]),
    )
