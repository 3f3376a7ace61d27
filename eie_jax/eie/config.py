"""EIE design parameters (Han et al., ISCA 2016, Sec. III-IV)."""

from __future__ import annotations

import dataclasses

from eie_jax.utils import schema

TIMINGS = ("paper", "rtl")


@dataclasses.dataclass(frozen=True)
class EIEConfig:
    """One EIE design point.

    Attributes:
      num_pes: processing elements N; row r of W belongs to PE r mod N (Sec. III-C).
      fifo_depth: usable slots of each PE's activation queue (Sec. III-D, 8 on the chip).
      index_bits: width of the relative row index z; gaps above 2**index_bits - 1 need
        padding entries (Sec. III-B, 4 on the chip).
      weight_bits: width of the codebook index v; the codebook has 2**weight_bits entries.
      act_frac_bits: fractional bits of the 16-bit activations and outputs.
      weight_frac_bits: fractional bits of the 16-bit decoded weights.
      clock_mhz: clock used to turn cycles into microseconds (800 MHz on the chip).
      timing: "paper" (the paper's timing model) or "rtl" (the reference cycle-level
        simulator's rules); the arithmetic is the same in both (timing.py).
      spmat_kb, ptr_kb, act_kb: each PE's SRAM capacities in KiB: sparse matrix (128),
        column pointers (32) and activations (2) (Sec. VI); see memory.py.
      dram_gbps: DRAM bandwidth in GB/s; 0 means none, and a layer that does not fit the
        SRAM is an error; > 0 streams such a layer's weights from DRAM (memory.py).
    """

    num_pes: int = 64
    fifo_depth: int = 8
    index_bits: int = 4
    weight_bits: int = 4
    act_frac_bits: int = 8
    weight_frac_bits: int = 12
    clock_mhz: float = 800.0
    timing: str = "paper"
    spmat_kb: float = 128.0
    ptr_kb: float = 32.0
    act_kb: float = 2.0
    dram_gbps: float = 0.0

    def __post_init__(self):
        for name, spec in FIELDS.fields.items():
            value = getattr(self, name)
            if not spec.ok(value):
                raise ValueError(f"EIEConfig.{name}={value!r}: allowed: {spec.allowed}")

    @property
    def max_gap(self) -> int:
        """Largest relative index a single entry can hold: 2**index_bits - 1."""
        return (1 << self.index_bits) - 1

    @property
    def codebook_size(self) -> int:
        return 1 << self.weight_bits

    def replace(self, **changes) -> EIEConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values, where: str = "config.eie") -> EIEConfig:
        """Builds a config from a dict/ConfigDict, naming unknown fields with their path."""
        values = dict(values)
        for name in values:
            if name not in FIELDS.fields:
                raise schema.unknown_field(where, name, FIELDS.fields)
        return cls(**values)


def section(*names: str, **defaults) -> schema.Section:
    """The schema of a config's `eie` section: the named EIEConfig fields (all when none
    are named) and those of `defaults`, with the defaults given there."""
    names = names or tuple(FIELDS.fields)
    fields = {n: FIELDS.fields[n] for n in (*names, *defaults)}
    for name, value in defaults.items():
        fields[name] = dataclasses.replace(fields[name], default=value)
    return schema.Section(fields)


_D = {f.name: f.default for f in dataclasses.fields(EIEConfig)}
# What each field allows (EIEConfig checks itself against these; configs' eie sections too).
FIELDS = schema.Section(
    dict(
        num_pes=schema.integer(_D["num_pes"], lo=1),
        fifo_depth=schema.integer(_D["fifo_depth"], lo=1),
        index_bits=schema.integer(_D["index_bits"], 1, 8),
        weight_bits=schema.integer(_D["weight_bits"], 1, 8),
        act_frac_bits=schema.integer(_D["act_frac_bits"], 0, 15),
        weight_frac_bits=schema.integer(_D["weight_frac_bits"], 0, 15),
        clock_mhz=schema.number(_D["clock_mhz"], 0, above=True),
        timing=schema.choice(_D["timing"], TIMINGS),
        spmat_kb=schema.number(_D["spmat_kb"], 0, above=True),
        ptr_kb=schema.number(_D["ptr_kb"], 0, above=True),
        act_kb=schema.number(_D["act_kb"], 0, above=True),
        dram_gbps=schema.number(_D["dram_gbps"], 0, note="0: no DRAM"),
    )
)
