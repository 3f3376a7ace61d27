"""Character LMs on Shakespeare compressed the EIE way (per-layer k-means, pruning) and the
LLM-engine way (linear int groups, GPTQ, AWQ): one table and one Pareto figure per model.

    make text-data
    python -m experiments.lm_compress --config=configs/char_transformer.py --workdir=runs/lm_tf
    python -m experiments.lm_compress --config=configs/char_lstm.py --workdir=runs/lm_lstm

Writes WORKDIR/dense (the orbax checkpoint every method starts from; WORKDIR/curve.png its
learning curve when trained here or published with one), WORKDIR/results.json (after every
method; a rerun skips finished ones), WORKDIR/results.md, WORKDIR/pareto.png and
WORKDIR/pareto_eie.png.
--dense_only stops after the dense model. The dense model is the published checkpoint
config.train.checkpoint (checkpoints/: the shipped configs name theirs) unless --retrain;
--retrain --publish trains it and writes it there.
"""

import shlex
import sys

from absl import flags, logging
from ml_collections import config_flags

from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the checkpoint and results go.")
_DENSE_ONLY = flags.DEFINE_bool("dense_only", False, "Train (or restore) the dense model only.")
_RETRAIN = flags.DEFINE_bool(
    "retrain", False, "Train the dense model even where config.train.checkpoint names one."
)
_PUBLISH = flags.DEFINE_bool(
    "publish", False, "With --retrain: write the trained model to config.train.checkpoint."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    command = shlex.join(["python", "-m", "experiments.lm_compress", *sys.argv[1:]])
    lm_study.run(
        _CONFIG.value, _WORKDIR.value, dense_only=_DENSE_ONLY.value, retrain=_RETRAIN.value,
        publish=_PUBLISH.value, command=command,
    )  # fmt: skip


if __name__ == "__main__":
    errors.run(main, validate=lambda: lm_study.validate(_CONFIG.value))
