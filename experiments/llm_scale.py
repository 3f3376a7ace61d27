"""What changes at LLM scale: Llama-2-7B's FC matrices on EIE, per token.

    python -m experiments.llm_scale --config=configs/llm_scale.py --workdir=runs/llm_scale

Prints and writes WORKDIR/llm_scale.{md,json} and llm_scale_tokens_per_s.png; the method
is in eie_jax/studies/llm_scale/projection.py.
"""

import json
import os

from absl import flags
from ml_collections import config_flags

from eie_jax.studies.llm_scale import projection as llm_scale
from eie_jax.utils import cli as errors
from eie_jax.utils import workdir

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the table and the figure go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    config, out = _CONFIG.value, _WORKDIR.value
    with workdir.session(out, "llm_scale", config):
        result = llm_scale.project(config, log=print)
        md = llm_scale.to_markdown(result)
        with open(os.path.join(out, "llm_scale.md"), "w") as f:
            f.write(md)
        workdir.write_json_atomic(os.path.join(out, "llm_scale.json"), workdir.jsonable(result))
        llm_scale.plot(result, os.path.join(out, "llm_scale_tokens_per_s.png"))
    print(md)
    print(json.dumps(result["timed"]))


if __name__ == "__main__":
    errors.run(main, validate=lambda: llm_scale.validate(_CONFIG.value))
