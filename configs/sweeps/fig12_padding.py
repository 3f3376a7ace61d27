r"""EIE Fig. 12: real work / total work (padding overhead) vs PE count, nine Table III layers.

python -m experiments.sweep --config=configs/sweeps/fig12_padding.py --workdir=runs/fig12

Han et al., ISCA 2016, Sec. VI-C: with more PEs each PE holds fewer rows, the gaps
between its nonzeros shrink, and fewer padding entries are needed (4-bit relative
indices). real_work_ratio = real entries / entries processed in broadcast columns.
`:smoke` shrinks it to two small layers and four PE counts.
"""

from eie_jax.sweep import eie_base_config, table_iii_sweep

PE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def get_config(arg=None):
    config = eie_base_config(arg, fifo_depth=8)
    config.plots = [
        dict(
            x="eie.num_pes",
            y="real_work_ratio",
            series="layer",
            logx=True,
            name="fig12_real_work_vs_pes.png",
            title="EIE Fig. 12: real work / total work (4-bit index)",
            xlabel="PEs",
            ylabel="real work / total work",
        )
    ]
    return config


def get_sweep(arg=None):
    return table_iii_sweep("eie.num_pes", PE_COUNTS, arg, smoke_values=[1, 4, 16, 64])
