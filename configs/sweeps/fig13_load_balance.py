r"""EIE Fig. 13: load-balance efficiency vs PE count, nine Table III layers, FIFO depth 8.

python -m experiments.sweep --config=configs/sweeps/fig13_load_balance.py --workdir=runs/fig13

Han et al., ISCA 2016, Sec. VI-C: efficiency falls as PEs are added, since each PE's
share of a column gets smaller and more uneven. load_efficiency = mean(pe_busy) /
total_cycles. `:smoke` shrinks it to two small layers and four PE counts.
"""

from eie_jax.sweep import eie_base_config, table_iii_sweep

PE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def get_config(arg=None):
    config = eie_base_config(arg, fifo_depth=8)
    config.plots = [
        dict(
            x="eie.num_pes",
            y="load_efficiency",
            series="layer",
            logx=True,
            name="fig13_load_efficiency_vs_pes.png",
            title="EIE Fig. 13: load efficiency vs PE count (FIFO 8)",
            xlabel="PEs",
        )
    ]
    return config


def get_sweep(arg=None):
    return table_iii_sweep("eie.num_pes", PE_COUNTS, arg, smoke_values=[1, 4, 16, 64])
