"""Compares pruning methods and 4-bit quantisers on the EIE model (hardware-aware compression).

    python -m experiments.compare --config=configs/compare_lenet_300_100.py --workdir=runs/compare

Writes WORKDIR/compare.json, WORKDIR/compare.md and WORKDIR/accuracy_vs_cycles_64pes.png;
a rerun skips the runs whose results exist. `:smoke` after the config file runs a tiny
version. Any field can be overridden with --config.<field>=value, e.g.
--config.methods.hw_loss.overrides.hw_loss.weight=1.0, --config.base.dataset=mnist or a
verdict's target, --config.verdicts.balanced_load_efficiency.above=0.8; the fields are
described in configs/compare_lenet_300_100.py and eie_jax/studies/compare/report.py (verdicts).
"""

from absl import flags, logging
from ml_collections import config_flags

from eie_jax.studies.compare import compare
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results, runs and checkpoints go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    compare.run_comparison(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: compare.run_configs(_CONFIG.value))
