"""The software crossover: sparse vs dense matvec at batch 1, beside the EIE model.

python -m experiments.bench_crossover --config=configs/bench_crossover.py --workdir=runs/crossover
python -m experiments.bench_crossover --config=configs/bench_crossover.py:smoke --workdir=/tmp/c
"""

import ml_collections


def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.size = 4096  # a size x size weight matrix, batch-1 input
    config.densities = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
    config.repeats = 20  # medians of this many runs after compilation
    config.seed = 0
    config.eie = dict(num_pes=64, fifo_depth=8, index_bits=4)  # the chip (ISCA 2016 Sec. V)
    if arg == "smoke":
        config.size = 512
        config.densities = [0.01, 0.5]
        config.repeats = 2
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
