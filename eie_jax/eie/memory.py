"""EIE's on-chip memory: what each PE's SRAMs must hold, and DRAM streaming when it is short.

Each PE has three SRAMs (ISCA 2016, Sec. VI; capacities are EIEConfig fields):
  Spmat (128 KB): the PE's entry stream, (weight_bits + index_bits) bits per entry, read
    in 64-bit rows, so bytes = ceil(entries * bits / 64) * 8;
  Ptr (32 KB): 16-bit column pointers p[0..K], so bytes = 2 (K + 1);
  Act (2 KB): the PE's share of the 16-bit source and destination activations,
    bytes = 2 (ceil(K / N) + ceil(M / N)).
A layer fits when every PE's bytes are within every capacity. When the Spmat or Ptr SRAM
is short and cfg.dram_gbps > 0, the layer's weights (all PEs' Spmat and Ptr bytes) stream
from DRAM once per run instead: time = max(compute cycles / clock, bytes / bandwidth),
and the energy adds 640 pJ per 32-bit DRAM read (Horowitz, EIE Table I). The streaming is
assumed to overlap the compute perfectly (double buffering); activations cannot stream,
so an Act SRAM that is short is an error whatever the DRAM.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax.compression import sparse_format
from eie_jax.utils.cli import UserError

SPMAT_ROW_BITS = 64
POINTER_BITS = sparse_format.POINTER_BITS  # 16-bit column pointers (ISCA 2016, Sec. III-B)
ACT_BITS = 16
DRAM_PJ_PER_32_BITS = 640.0
SRAMS = ("spmat", "ptr", "act")


def sram_bytes(entries_per_pe, shape, num_pes: int, entry_bits: int) -> dict[str, np.ndarray]:
    """Bytes each PE needs in each SRAM: {"spmat", "ptr", "act"} -> (N,) int64."""
    m, k = shape
    entries = np.asarray(entries_per_pe, np.int64)
    rows = -(-entries * entry_bits // SPMAT_ROW_BITS)
    ones = np.ones(num_pes, np.int64)
    return {
        "spmat": rows * (SPMAT_ROW_BITS // 8),
        "ptr": ones * (k + 1) * (POINTER_BITS // 8),
        "act": ones * (-(-k // num_pes) + -(-m // num_pes)) * (ACT_BITS // 8),
    }


def dram_us(num_bytes: float, gbps: float) -> float:
    """Time to read num_bytes from DRAM at gbps GB/s, in µs."""
    return num_bytes / (gbps * 1e3)


def dram_energy_uj(num_bytes: float) -> float:
    """Energy of reading num_bytes from DRAM at 640 pJ per 32 bits (Table I), in µJ."""
    return num_bytes * 8 / 32 * DRAM_PJ_PER_32_BITS * 1e-6


def capacity_bytes(cfg) -> dict[str, int]:
    return {name: int(getattr(cfg, f"{name}_kb") * 1024) for name in SRAMS}


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Where a layer's weights live and what that costs per run.

    fits: every PE's weights fit its SRAMs; dram_bytes: bytes streamed per run (0 when
    it fits); dram_us: their transfer time at cfg.dram_gbps; dram_energy_uj: their read
    energy; need/capacity: the largest per-PE bytes and the capacity of each SRAM.
    """

    fits: bool
    dram_bytes: int
    dram_us: float
    dram_energy_uj: float
    need: dict
    capacity: dict

    def time_us(self, compute_us: float) -> float:
        """max(compute, DRAM transfer): the layer's time with streaming overlapped."""
        return max(compute_us, self.dram_us)


def plan(layer, cfg, where: str = "layer") -> MemoryPlan:
    """Checks the layer (an EncodedLayer) against cfg's SRAMs; see the module docstring.

    Raises UserError naming the SRAM, the bytes needed and the capacity when it does not
    fit and there is no DRAM (cfg.dram_gbps == 0), or when the Act SRAM is short.
    """
    have = capacity_bytes(cfg)
    need = {name: int(np.max(getattr(layer, f"{name}_bytes"))) for name in SRAMS}
    short = [name for name in SRAMS if need[name] > have[name]]
    remedy = {
        "spmat": "use more PEs",
        "ptr": "split the layer's inputs (pointers per PE grow with K, not N)",
        "act": "use more PEs",
    }
    for name in short:
        if name == "act" or cfg.dram_gbps <= 0:
            stream = "set eie.dram_gbps > 0 to stream the weights from DRAM, or " * (name != "act")
            raise UserError(
                f"{where}: {name.capitalize()} SRAM needs {need[name]} bytes per PE but holds "
                f"{have[name]} bytes ({name}_kb={getattr(cfg, f'{name}_kb')}): {stream}"
                f"{remedy[name]}"
            )
    if not short:
        return MemoryPlan(True, 0, 0.0, 0.0, need, have)
    streamed = int(np.sum(layer.spmat_bytes) + np.sum(layer.ptr_bytes))
    return MemoryPlan(
        fits=False,
        dram_bytes=streamed,
        dram_us=dram_us(streamed, cfg.dram_gbps),
        dram_energy_uj=dram_energy_uj(streamed),
        need=need,
        capacity=have,
    )
