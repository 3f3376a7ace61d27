"""Runs a sweep config's points, resumably, then draws its figures.

python -m experiments.sweep --config=configs/sweeps/fig8_fifo_depth.py --workdir=runs/fig8
python -m experiments.sweep --config=configs/sweeps/fig8_fifo_depth.py:smoke --workdir=/tmp/f8

`:smoke` after the file name selects the config's small version (fewer layers and values,
layers shrunk; the shapes simulated are logged). Any field of the base config can be
overridden with --config.<field>=value (e.g. --config.seed=1 or --config.eie.num_pes=16);
the fields are described in the config file and in eie_jax/sweep/eie_points.py
(eie_base_config). Rerunning the same command skips finished points; a changed config is
refused, and so is a second process on the same workdir.
"""

from absl import flags
from ml_collections import config_flags

from eie_jax import errors, sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Sweep config file (get_config + get_sweep), optionally with :smoke; override fields "
    "with --config.<field>=value.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results.jsonl and figures.")
_PLOT = flags.DEFINE_bool("plot", True, "Draw the config's figures when the sweep is done.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    axes = sweep.load_axes(flags.FLAGS["config"].config_filename)
    sweep.run_sweep(_CONFIG.value, axes, _WORKDIR.value)
    if _PLOT.value:
        for path in sweep.plot_sweep(_WORKDIR.value):
            print(f"wrote {path}")


if __name__ == "__main__":
    errors.run(main)
