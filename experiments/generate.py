"""Batch-1 text generation of a compressed character LM on the EIE model.

    python -m experiments.generate --config=configs/char_transformer.py --workdir=runs/lm_tf
    python -m experiments.generate --config=configs/char_lstm.py --workdir=runs/lm_lstm

Restores the dense model from WORKDIR/dense (trains it when missing), compresses it as
config.generate says, checks fidelity and generates; writes WORKDIR/generate/result.{json,md}
(eie_jax/studies/generation/run.py).
"""

from absl import flags
from ml_collections import config_flags

from eie_jax.studies.generation import run as decode_run
from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import cli as errors

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Holds dense/; results go to generate/.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    result = decode_run.run(_CONFIG.value, _WORKDIR.value, log=print)
    print(decode_run.to_markdown(result))
    print(result["generation"]["text"])


if __name__ == "__main__":
    errors.run(main, validate=lambda: lm_study.validate(_CONFIG.value))
