r"""EIE Fig. 8: load-balance efficiency vs FIFO depth, nine Table III layers, 64 PEs.

python -m experiments.sweep --config=configs/sweeps/fig8_fifo_depth.py --workdir=runs/fig8

Han et al., ISCA 2016, Sec. VI-A: about half the cycles are idle at depth 1 and little is
gained past depth 8. Every point runs under both timings (`eie.timing`): the paper's
recurrence and the rtl rules of the reference simulator, one figure each.
`:smoke` shrinks it to two small layers and three depths.
"""

from eie_jax.sweep import eie_base_config, product, sweep, table_iii_sweep

DEPTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
TIMINGS = ["paper", "rtl"]


def get_config(arg=None):
    config = eie_base_config(arg, num_pes=64)
    config.plots = [
        dict(
            x="eie.fifo_depth",
            y="load_efficiency",
            series="layer",
            where={"eie.timing": timing},
            logx=True,
            name=name,
            title=f"EIE Fig. 8: load efficiency vs FIFO depth (64 PEs, {timing} timing)",
            xlabel="FIFO depth",
        )
        for timing, name in [
            ("paper", "fig8_load_efficiency_vs_fifo.png"),
            ("rtl", "fig8_rtl_load_efficiency_vs_fifo.png"),
        ]
    ]
    return config


def get_sweep(arg=None):
    layers_x_depths = table_iii_sweep(
        "eie.fifo_depth", DEPTHS, arg, smoke_values=[1, 8, 64], smoke_layers=("Alex-7", "NT-LSTM")
    )
    return product(layers_x_depths, sweep("eie.timing", TIMINGS))
