"""The training benchmark: characters/s and achieved GFLOP/s of both language models' train
steps, beside a float32 matmul measured in the same run.

python -m experiments.bench_train --config=configs/bench_train.py --workdir=runs/bench_train
python -m experiments.bench_train --config=configs/bench_train.py:smoke --workdir=/tmp/bt

The models are the LM study's, at its sizes and training batches (configs/char_transformer.py,
configs/char_lstm.py; `:smoke` takes their smoke sizes). SECTION below is the schema: every
field, its default and what it allows (experiments.bench_train checks a config against it).
"""

from configs import char_lstm, char_transformer
from eie_jax.studies.lm import study as lm_study
from eie_jax.utils import schema

_STUDY = lm_study.section().fields

# One model as the LM study trains it: the study's own fields, so that they allow the same.
MODEL = schema.Section(
    dict(
        model=_STUDY["model"],
        model_kwargs=_STUDY["model_kwargs"],
        batch_size=_STUDY["train"].fields["batch_size"],
        context=_STUDY["data"].fields["context"],
        learning_rate=_STUDY["train"].fields["learning_rate"],
        weight_decay=_STUDY["train"].fields["weight_decay"],
    )
)

SECTION = schema.Section(
    dict(
        # name -> a model and its training batch; get_config puts the study's two here
        models=schema.Table(MODEL),
        repeats=schema.integer(20, lo=1),  # timings: medians of this many, after compiling
        matmul_size=schema.integer(2048, lo=1),  # the float32 n x n @ n x n reference
        # The host batches (text.train_batch) are drawn from a random text of this many
        # ids of this vocabulary (Shakespeare's training text: 4.6 M characters, 96 ids).
        text_chars=schema.integer(4_600_000, lo=2),
        vocab_size=schema.integer(96, lo=2),
        seed=schema.integer(0, lo=0),
    )
)


def model_entry(study) -> dict:
    """A study config's model and training batch, as a `MODEL` entry."""
    return dict(
        model=study.model,
        model_kwargs=dict(study.model_kwargs),
        batch_size=study.train.batch_size,
        context=study.data.context,
        learning_rate=study.train.learning_rate,
        weight_decay=study.train.weight_decay,
    )


def get_config(arg=None):
    if arg not in (None, "smoke"):
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    config = SECTION.defaults()
    for module in (char_transformer, char_lstm):
        study = module.get_config(arg)
        config.models[study.model] = model_entry(study)
    if arg == "smoke":
        config.update(repeats=2, matmul_size=256, text_chars=10_000)
    return config
