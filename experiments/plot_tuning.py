"""Tuning table and Pareto figure (P+Q+H ratio vs accuracy change) of compression runs.

    python -m experiments.plot_tuning --reference=configs/lenet_300_100.py \
        --out=docs/figures/lenet_64x_pareto.png runs/l300_64x_seed0 runs/l300_64x_seed1 ...

Each positional argument is a workdir of experiments/compress.py; runs named <variant>_seed<N>
are averaged per variant. Writes OUT (PNG), OUT with .json (the per-variant numbers) and
prints the markdown table, with each variant's overrides against --reference's config.
"""

import json
import os

from absl import flags
from ml_collections import config_flags

from eie_jax.studies.compress.pipeline import validate_config
from eie_jax.studies.tuning import tuning
from eie_jax.utils import cli as errors
from eie_jax.utils.cli import UserError

_OUT = flags.DEFINE_string("out", None, "The PNG to write; its .json goes beside it.")
_REFERENCE = config_flags.DEFINE_config_file(
    "reference", None, "A config file (file.py or file.py:arg) the overrides are taken against."
)
_TITLE = flags.DEFINE_string("title", "compression ratio vs accuracy", "Figure title.")
_TARGET_RATIO = flags.DEFINE_float("target_ratio", None, "A dashed line at this P+Q+H ratio.")
_TARGET_DELTA = flags.DEFINE_float(
    "target_delta", None, "A dashed line at this accuracy change (points, e.g. -0.5)."
)
flags.mark_flags_as_required(["out"])


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise UserError("no workdirs given: pass the run directories as arguments")
    for w in workdirs:
        if not os.path.isfile(os.path.join(w, "report.json")):
            raise UserError(f"{w}: no report.json; run experiments.compress there first")
    rows = tuning.summarize(
        [tuning.load_run(w) for w in workdirs],
        None if _REFERENCE.value is None else _REFERENCE.value.to_dict(),
    )
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    tuning.pareto_figure(rows, _OUT.value, _TITLE.value, (_TARGET_RATIO.value, _TARGET_DELTA.value))
    with open(os.path.splitext(_OUT.value)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    print(tuning.to_markdown(rows))
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    errors.run(main, validate=lambda: _REFERENCE.value is None or validate_config(_REFERENCE.value))
