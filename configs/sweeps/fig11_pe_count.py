r"""EIE Fig. 11: speedup vs PE count 1..256 over 1 PE, nine Table III layers, FIFO depth 8.

python -m experiments.sweep --config=configs/sweeps/fig11_pe_count.py --workdir=runs/fig11

Han et al., ISCA 2016, Sec. VI-C: near-linear except NT-We, whose 600 rows leave too
little work per PE. `:smoke` shrinks it to two small layers and four PE counts.
"""

from eie_jax.sweep import eie_base_config, table_iii_sweep

PE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def get_config(arg=None):
    config = eie_base_config(arg, fifo_depth=8)
    config.plots = [
        dict(
            x="eie.num_pes",
            y="total_cycles",
            series="layer",
            transform="speedup",
            ref_x=1,
            logx=True,
            logy=True,
            name="fig11_speedup_vs_pes.png",
            title="EIE Fig. 11: speedup over 1 PE (FIFO 8)",
            xlabel="PEs",
            ylabel="speedup over 1 PE",
        )
    ]
    return config


def get_sweep(arg=None):
    return table_iii_sweep("eie.num_pes", PE_COUNTS, arg, smoke_values=[1, 4, 16, 64])
