r"""A layer of your own shape on EIE: weight density x PE count.

python -m experiments.sweep --config=configs/sweeps/own_layer.py --workdir=runs/own_layer

A template for sweeping your own layer: declare it in `layers` (out_features x
in_features, weight and activation density) and sweep its name beside Table III names, or
any of its fields ('layers.my_fc.weight_density'). Here a 2048 x 1024 layer (an MLP block,
say) at four weight densities on 16, 64 and 256 PEs, FIFO 8: cycles fall with density and
PEs until the broadcasts (one per nonzero activation) dominate. `:smoke` shrinks the layer
to 5 % per side (the shapes simulated are logged) and runs two densities on two PE counts.
"""

from eie_jax.sweep import eie_base_config, product, sweep

MY_FC = dict(out_features=2048, in_features=1024, weight_density=0.1, act_density=0.5)
DENSITIES = [0.05, 0.1, 0.2, 0.4]
PE_COUNTS = [16, 64, 256]


def get_config(arg=None):
    config = eie_base_config(arg, layers=dict(my_fc=MY_FC), fifo_depth=8)
    common = dict(
        x="eie.num_pes",
        series="layers.my_fc.weight_density",
        logx=True,
        xlabel="PEs",
        legend_title="weight density",
    )
    config.plots = [
        dict(
            y="total_cycles",
            logy=True,
            name="own_layer_cycles_vs_pes.png",
            title="2048 x 1024 layer on EIE (FIFO 8)",
            **common,
        ),
        dict(
            y="load_efficiency",
            name="own_layer_load_efficiency_vs_pes.png",
            title="2048 x 1024 layer: load efficiency (FIFO 8)",
            **common,
        ),
    ]
    return config


def get_sweep(arg=None):
    densities, pes = (DENSITIES, PE_COUNTS) if arg != "smoke" else ([0.1, 0.4], [4, 16])
    return product(sweep("layers.my_fc.weight_density", densities), sweep("eie.num_pes", pes))
