"""EIE Table III benchmark: the nine layers on the EIE model, plus design-space figures.

python -m experiments.bench_eie --config=configs/eie_benchmarks.py --workdir=runs/bench_eie
python -m experiments.bench_eie --config=configs/eie_benchmarks.py:smoke --workdir=/tmp/b
"""

from eie_jax.eie import benchmarks


def get_config(arg=None):
    # Every field, its default and what it allows: eie_jax/eie/benchmarks.py, BENCH_EIE.
    config = benchmarks.BENCH_EIE.defaults()
    if arg == "smoke":
        config.layers = ["Alex-8", "NT-LSTM"]
        config.repeats = 2
        config.batch_layer = "NT-LSTM"
        config.batch_size = 4
        config.fifo_depths = [1, 8]
        config.pe_counts = [1, 64]
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
