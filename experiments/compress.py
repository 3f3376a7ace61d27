"""Compresses a network the Deep Compression way and runs its FC layers on the EIE model.

    python -m experiments.compress --config=configs/lenet_300_100.py --workdir=runs/lenet_300_100

Writes WORKDIR/report.json, WORKDIR/report.md and WORKDIR/checkpoints/<stage>/; rerunning
the same command resumes after the last finished stage.
"""

from absl import flags, logging
from ml_collections import config_flags

from eie_jax.studies.compress import pipeline
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where report.json, report.md and the stage checkpoints go (resumable)."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    pipeline.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: pipeline.validate_config(_CONFIG.value))
