"""EIE Figs. 6 and 7: speedup and energy efficiency over the CPU, nine Table III layers.

python -m experiments.fig_eie_vs_cpu --config=configs/fig_eie_vs_cpu.py --workdir=runs/fig67
python -m experiments.fig_eie_vs_cpu --config=configs/fig_eie_vs_cpu.py:smoke --workdir=/tmp/f
"""

from eie_jax.eie import benchmarks


def get_config(arg=None):
    # Every field, its default and what it allows: eie_jax/eie/benchmarks.py, FIG_EIE_VS_CPU.
    config = benchmarks.FIG_EIE_VS_CPU.defaults()
    if arg == "smoke":
        config.layers = ["Alex-8", "NT-LSTM"]
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
