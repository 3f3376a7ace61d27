"""What several test modules share: the project's root, an entry point run as a user runs it,
the one-line error a user's mistake gives, the smoke configs, report comparison, a written
PNG's size, and the small sweeps that tests and the child processes they start both load
(`from tests.helpers import train_config` in a sweep config file)."""

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
    """`python -m <args>` from the project's root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


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
