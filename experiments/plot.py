"""Draws the figures a sweep config declares, from DIR/results.*.jsonl (every process's).

python -m experiments.plot --workdir=runs/fig8
python -m experiments.plot --workdir=runs/fig8 --config=configs/sweeps/fig8_fifo_depth.py

Without --config the figures recorded in DIR/sweep_config.json are drawn; with it, the
config's `plots` are drawn instead (the results must come from the same sweep). Each entry
of `config.plots` is a dict of these options (eie_jax/sweep/plot.py):
"""

from absl import flags
from ml_collections import config_flags

from eie_jax import sweep
from eie_jax.utils import cli as errors

__doc__ += "".join(f"  {k}: {v}\n" for k, v in sweep.PLOT_OPTIONS.items())

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Optional sweep config whose `plots` replace the recorded ones.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "A sweep's workdir.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    plots = None if _CONFIG.value is None else list(_CONFIG.value.plots)
    for path in sweep.plot_sweep(_WORKDIR.value, plots):
        print(f"wrote {path}")


if __name__ == "__main__":
    errors.run(main, validate=lambda: _CONFIG.value is None or sweep.check_config(_CONFIG.value))
