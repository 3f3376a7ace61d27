"""EIE Figs. 6 and 7: speedup and energy efficiency over the CPU, nine Table III layers.

python -m experiments.fig_eie_vs_cpu --config=configs/fig_eie_vs_cpu.py --workdir=runs/fig67
python -m experiments.fig_eie_vs_cpu --config=configs/fig_eie_vs_cpu.py:smoke --workdir=/tmp/f
"""

import ml_collections

from configs import eie_benchmarks


def get_config(arg=None):
    base = eie_benchmarks.get_config(arg)
    config = ml_collections.ConfigDict()
    config.layers = base.layers
    config.seed = 0
    config.eie = dict(base.eie)
    # A layer that does not fit the 162 KB of SRAM per PE streams its weights from DRAM at
    # this bandwidth (LPDDR3-class, GB/s); the figures' EIE bars assume on-chip weights,
    # as the paper does, and the table gives the streamed time beside them.
    config.eie["dram_gbps"] = 12.8
    return config
