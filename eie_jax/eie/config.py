"""EIE design parameters (Han et al., ISCA 2016, Sec. III-IV)."""

from __future__ import annotations

import dataclasses
import math

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
        _check_int("num_pes", self.num_pes, 1, None)
        _check_int("fifo_depth", self.fifo_depth, 1, None)
        _check_int("index_bits", self.index_bits, 1, 8)
        _check_int("weight_bits", self.weight_bits, 1, 8)
        _check_int("act_frac_bits", self.act_frac_bits, 0, 15)
        _check_int("weight_frac_bits", self.weight_frac_bits, 0, 15)
        for name in ("clock_mhz", "spmat_kb", "ptr_kb", "act_kb"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"EIEConfig.{name}={getattr(self, name)!r}: must be finite, > 0")
        if not 0 <= self.dram_gbps < math.inf:
            raise ValueError(
                f"EIEConfig.dram_gbps={self.dram_gbps!r}: must be finite, >= 0 (0: no DRAM)"
            )
        if self.timing not in TIMINGS:
            raise ValueError(f"EIEConfig.timing={self.timing!r}: allowed: {list(TIMINGS)}")

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"EIEConfig.{name}={value!r}: must be an int")
    if value < lo or (hi is not None and value > hi):
        allowed = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"EIEConfig.{name}={value}: must be in {allowed}")
