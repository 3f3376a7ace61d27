"""LLM scale by simulation: Llama-2-7B's FC shapes on EIE (eie_jax/llm_scale.py).

python -m experiments.llm_scale --config=configs/llm_scale.py --workdir=runs/llm_scale
python -m experiments.llm_scale --config=configs/llm_scale.py:smoke --workdir=/tmp/llm
"""

import ml_collections


def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.sparsities = [0.0, 0.5, 0.7, 0.9]
    # Input density of the MLP down projection: an assumption, the ReLU density measured
    # on the char transformer's MLP (experiments.generate); every other input is dense.
    config.down_density = 0.4  # dense char transformer: 0.44, 0.36 (blocks 0, 1)
    config.num_pes = [64, 1024]  # EIE sizes simulated; SRAM-resident: one such EIE per matrix
    config.bandwidths_gbps = [50.0, 1000.0]  # LPDDR-class, HBM-class
    config.shrink = 1  # divides every matrix dimension (smoke runs)
    config.eie = dict(fifo_depth=8, index_bits=4, weight_bits=4)
    # Times the acceptance point: one rows x cols matrix fully simulated (encode +
    # eie.simulate, arithmetic included) on this many PEs, at sparsity 0.
    config.timed = dict(rows=4096, cols=11008, num_pes=1024)
    if arg == "smoke":
        config.sparsities = [0.0, 0.9]
        config.num_pes = [16]
        config.shrink = 32
        config.timed = dict(rows=128, cols=344, num_pes=16)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
