"""Character LMs on Shakespeare compressed the EIE way (per-layer k-means, pruning) and the
LLM-engine way (linear int groups, GPTQ, AWQ): one table and one Pareto figure per model.

    make text-data
    python -m experiments.lm_compress --config=configs/char_transformer.py --workdir=runs/lm_tf
    python -m experiments.lm_compress --config=configs/char_lstm.py --workdir=runs/lm_lstm

Writes WORKDIR/dense (the orbax checkpoint every method starts from), WORKDIR/results.json
(after every method; a rerun skips finished ones), WORKDIR/results.md and WORKDIR/pareto.png.
--dense_only stops after the dense model.
"""

from absl import flags, logging
from ml_collections import config_flags

from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the checkpoint and results go.")
_DENSE_ONLY = flags.DEFINE_bool("dense_only", False, "Train (or restore) the dense model only.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    lm_study.run(_CONFIG.value, _WORKDIR.value, dense_only=_DENSE_ONLY.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: lm_study.validate(_CONFIG.value))
