"""EIE Table III benchmark: the nine layers on the EIE model, plus design-space figures.

python -m experiments.bench_eie --config=configs/eie_benchmarks.py --workdir=runs/bench_eie
python -m experiments.bench_eie --config=configs/eie_benchmarks.py:smoke --workdir=/tmp/b
"""

import ml_collections


def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.layers = [
        "Alex-6", "Alex-7", "Alex-8", "VGG-6", "VGG-7", "VGG-8", "NT-We", "NT-Wd", "NT-LSTM",
    ]  # fmt: skip
    config.seed = 0
    # The chip: 64 PEs, FIFO depth 8, 4-bit indices and weights, 800 MHz (ISCA 2016 Sec. V).
    config.eie = dict(
        num_pes=64,
        fifo_depth=8,
        index_bits=4,
        weight_bits=4,
        act_frac_bits=8,
        weight_frac_bits=12,
        clock_mhz=800.0,
    )
    config.repeats = 5  # timings are medians of this many runs after compilation
    config.batch_layer = "Alex-7"
    config.batch_size = 64
    config.fifo_depths = [1, 2, 4, 8, 16, 32, 64, 128, 256]  # Fig. 8
    config.pe_counts = [1, 2, 4, 8, 16, 32, 64, 128, 256]  # Fig. 11
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
