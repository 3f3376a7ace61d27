"""LLM scale by simulation: Llama-2-7B's FC shapes on EIE (eie_jax/studies/llm_scale/projection.py).

python -m experiments.llm_scale --config=configs/llm_scale.py --workdir=runs/llm_scale
python -m experiments.llm_scale --config=configs/llm_scale.py:smoke --workdir=/tmp/llm
"""

from eie_jax.studies.llm_scale import projection as llm_scale


def get_config(arg=None):
    # Every field, its default (Llama-2-7B's shapes on 64 and 1024 PEs, LPDDR- and
    # HBM-class bandwidths) and what it allows: eie_jax/studies/llm_scale/projection.py, section().
    config = llm_scale.section().defaults()
    if arg == "smoke":
        config.sparsities = [0.0, 0.9]
        config.num_pes = [16]
        config.shrink = 32
        config.timed = dict(rows=128, cols=344, num_pes=16)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
