"""EIE design parameters (Han et al., ISCA 2016, Sec. III-IV)."""

from __future__ import annotations

import dataclasses


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
    """

    num_pes: int = 64
    fifo_depth: int = 8
    index_bits: int = 4
    weight_bits: int = 4
    act_frac_bits: int = 8
    weight_frac_bits: int = 12
    clock_mhz: float = 800.0

    def __post_init__(self):
        _check_int("num_pes", self.num_pes, 1, None)
        _check_int("fifo_depth", self.fifo_depth, 1, None)
        _check_int("index_bits", self.index_bits, 1, 8)
        _check_int("weight_bits", self.weight_bits, 1, 8)
        _check_int("act_frac_bits", self.act_frac_bits, 0, 15)
        _check_int("weight_frac_bits", self.weight_frac_bits, 0, 15)
        if not self.clock_mhz > 0:
            raise ValueError(f"EIEConfig.clock_mhz={self.clock_mhz!r}: must be > 0")

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
