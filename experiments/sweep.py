"""Runs a sweep config's points, resumably, then draws its figures.

python -m experiments.sweep --config=configs/sweeps/fig8_fifo_depth.py --workdir=runs/fig8
python -m experiments.sweep --config=configs/sweeps/fig8_fifo_depth.py:smoke --workdir=/tmp/f8

`:smoke` after the file name selects the config's small version (fewer layers and values,
layers shrunk; the shapes simulated are logged). Any field of the base config can be
overridden with --config.<field>=value (e.g. --config.seed=1 or --config.eie.num_pes=16);
the fields are described in the config file and in eie_jax/sweep/eie_points.py
(eie_base_config). Rerunning the same command skips finished points; a changed config is
refused, and so is a second run on the same workdir. A field the sweep varies (an axis of
get_sweep) cannot be overridden: change its values in the config file.

Several processes or hosts (jax.distributed; eie_jax/sweep/multihost.py): run the same
command in each with --coordinator_address=HOST:PORT (process 0's host), --num_processes
and --process_id, or under SLURM's srun / Open MPI's mpirun, which set them. The workdir
must be shared; each process writes its own results.<process_id>.jsonl and process 0 draws
the figures.
"""

import jax
from absl import flags
from ml_collections import config_flags

from eie_jax import sweep
from eie_jax.sweep import multihost
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Sweep config file (get_config + get_sweep), optionally with :smoke; override fields "
    "with --config.<field>=value.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the results and figures.")
_PLOT = flags.DEFINE_bool("plot", True, "Draw the config's figures when the sweep is done.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "HOST:PORT of process 0's coordinator (jax.distributed); default: from the environment "
    "(JAX_COORDINATOR_ADDRESS, SLURM, Open MPI), or run alone.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the sweep (jax.distributed); default: environment."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's id in [0, num_processes); default: environment."
)
flags.mark_flags_as_required(["config", "workdir"])


def validate():
    """The sweep's config, its axes, and no --config.<field> that the sweep varies (each
    point's value would replace it). jax.distributed starts first (multihost): checking a
    training sweep's points builds models, a JAX call."""
    spec = config_flags.get_config_filename(flags.FLAGS["config"])
    axes = sweep.load_axes(spec)
    overridden = config_flags.get_override_values(flags.FLAGS["config"])
    sweep.check_not_swept(overridden, axes, spec.partition(":")[0])
    multihost.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    sweep.check_config(_CONFIG.value, axes)


def main(argv):
    del argv  # validated (errors.run calls validate first)
    axes = sweep.load_axes(config_flags.get_config_filename(flags.FLAGS["config"]))
    sweep.run_sweep(_CONFIG.value, axes, _WORKDIR.value)
    if _PLOT.value and jax.process_index() == 0:
        for path in sweep.plot_sweep(_WORKDIR.value):
            print(f"wrote {path}")


if __name__ == "__main__":
    errors.run(main, validate=validate)
