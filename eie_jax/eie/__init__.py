"""A functional model of the EIE accelerator (Han et al., ISCA 2016).

from eie_jax import eie
cfg = eie.EIEConfig(num_pes=64, fifo_depth=8)          # timing="rtl" for the reference's
layer = eie.encode(codes, codebook, cfg)
res = eie.simulate(layer, x, cfg)
"""

from eie_jax.compression.sparse_format import column_counts
from eie_jax.eie import energy, fixed_point, memory
from eie_jax.eie.config import EIEConfig
from eie_jax.eie.cost import expected_cycles, expected_entries
from eie_jax.eie.datapath import (
    SimResult,
    bias_entries,
    simulate,
    simulate_batch,
    simulate_cycles,
)
from eie_jax.eie.encode import ColumnSlices, EncodedLayer, encode
from eie_jax.eie.timing import (
    Track,
    bias_column,
    column_entries,
    cycles_from_counts,
    history_size,
    packed_cycles,
    rtl_cycles_from_counts,
)

__all__ = [
    "energy",
    "fixed_point",
    "memory",
    "ColumnSlices",
    "EIEConfig",
    "EncodedLayer",
    "SimResult",
    "Track",
    "bias_column",
    "bias_entries",
    "column_counts",
    "column_entries",
    "cycles_from_counts",
    "encode",
    "expected_cycles",
    "expected_entries",
    "history_size",
    "packed_cycles",
    "rtl_cycles_from_counts",
    "simulate",
    "simulate_batch",
    "simulate_cycles",
]
