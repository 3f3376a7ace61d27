"""The software crossover: sparse vs dense matvec at batch 1, beside the EIE model.

python -m experiments.bench_crossover --config=configs/bench_crossover.py --workdir=runs/crossover
python -m experiments.bench_crossover --config=configs/bench_crossover.py:smoke --workdir=/tmp/c
"""

from eie_jax.eie import benchmarks


def get_config(arg=None):
    # Every field, its default and what it allows: eie_jax/eie/benchmarks.py, CROSSOVER.
    config = benchmarks.CROSSOVER.defaults()
    if arg == "smoke":
        config.size = 512
        config.densities = [0.01, 0.5]
        config.repeats = 2
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
