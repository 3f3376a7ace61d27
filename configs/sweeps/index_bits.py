r"""Relative index width 2..8 bits vs storage and cycles, nine Table III layers, 64 PEs.

python -m experiments.sweep --config=configs/sweeps/index_bits.py --workdir=runs/index_bits

EIE fixes the relative row index at 4 bits (Han et al., ISCA 2016, Sec. III-B) and never
measured the alternatives. A narrow index needs more padding entries (more storage and
more cycles); a wide one makes every entry bigger. storage_bits = entries x (weight_bits
+ index_bits) + 64 PEs x (K + 1) 16-bit pointers. `:smoke` shrinks it to two small
layers and three widths.
"""

from eie_jax.sweep import eie_base_config, table_iii_sweep

INDEX_BITS = [2, 3, 4, 5, 6, 7, 8]


def get_config(arg=None):
    config = eie_base_config(arg, num_pes=64, fifo_depth=8)
    common = dict(x="eie.index_bits", series="layer", ref_x=4, xlabel="relative index bits")
    config.plots = [
        dict(
            y="storage_bits",
            transform="relative",
            name="index_bits_storage.png",
            title="Storage vs relative index width (64 PEs)",
            ylabel="storage / storage at 4 bits",
            **common,
        ),
        dict(
            y="total_cycles",
            transform="relative",
            name="index_bits_cycles.png",
            title="Cycles vs relative index width (64 PEs, FIFO 8)",
            ylabel="cycles / cycles at 4 bits",
            **common,
        ),
    ]
    return config


def get_sweep(arg=None):
    return table_iii_sweep(
        "eie.index_bits",
        INDEX_BITS,
        arg,
        smoke_values=[2, 4, 8],
        smoke_layers=("Alex-7", "NT-LSTM"),
    )
