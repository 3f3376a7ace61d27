"""EIE's energy per layer from the per-PE power breakdown (ISCA 2016, Table II).

Table II gives each PE component's power at 800 MHz under full activity; we read full
activity as every component doing its event once per cycle, so each event costs
P / 800 MHz (1 mW -> 1.25 pJ):
  an entry (padding included): one Spmat read (SpmatRead), one MAC (ArithmUnit), one
    accumulator read/write (ActRW);
  a broadcast, per PE: one pointer read (PtrRead) and one queue push/pop (Act queue);
  the LNZD tree (21 units for 64 PEs: ceil(N/4) + ceil(N/16) + ... + 1) draws its
    0.023 mW per unit for the layer's whole time.
The rounded components sum to 9.158 mW against Table II's total of 9.157 mW, so they are
scaled by 9.157 / 9.158: a PE that reads one entry of a new broadcast every cycle draws
exactly 9.157 mW, and a 64-PE chip 0.587 W (Table V: 0.59 W).
Idle cycles (a PE waiting on its queue or on the slowest PE) are the assumption Table II
cannot settle, being measured at full activity: we charge them the clock network's
1.874 mW (the clock is not gated; no SRAM, arithmetic or queue activity). DRAM reads,
when the layer streams (memory.py), add 640 pJ per 32 bits.
Figures of merit: pJ per useful MAC (a nonzero weight times a nonzero activation) and
GOP/s, GOP/s/W with the dense-equivalent op count 2 M K (EIE's convention).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax.eie import fixed_point

# Table II, one PE at 800 MHz, 45 nm, mW.
TABLE_II_MHZ = 800.0
PE_TOTAL_MW = 9.157
COMPONENT_MW = {
    "spmat_read": 4.955,
    "ptr_read": 1.807,
    "arithm": 1.162,
    "act_rw": 1.122,
    "act_queue": 0.112,
}
CLOCK_NETWORK_MW = 1.874
LNZD_UNIT_MW = 0.023


def event_pj(component: str) -> float:
    """Energy of one event of a component: its Table II power (scaled to the total) / 800 MHz."""
    scale = PE_TOTAL_MW / sum(COMPONENT_MW.values())
    return COMPONENT_MW[component] * scale * 1e3 / TABLE_II_MHZ


ENTRY_PJ = sum(event_pj(c) for c in ("spmat_read", "arithm", "act_rw"))
BROADCAST_PJ = sum(event_pj(c) for c in ("ptr_read", "act_queue"))
IDLE_PJ = CLOCK_NETWORK_MW * 1e3 / TABLE_II_MHZ
LNZD_UNIT_PJ_PER_CYCLE = LNZD_UNIT_MW * 1e3 / TABLE_II_MHZ


def lnzd_units(num_pes: int) -> int:
    """Nodes of the 4-ary LNZD tree over N PEs: ceil(N/4) + ceil(N/16) + ... + 1."""
    units, n = 0, num_pes
    while n > 1:
        n = -(-n // 4)
        units += n
    return units


@dataclasses.dataclass(frozen=True)
class LayerEnergy:
    """One layer run's energy (per input) and figures of merit.

    energy_uj: PEs + LNZD + DRAM; pe_power_mw: (N,) each PE's average power over the run;
    breakdown_uj: entries, broadcasts, idle, lnzd, dram; useful_macs: nonzero weight x
    nonzero activation products; time_us: the time the energy is spread over.
    """

    energy_uj: float
    pe_power_mw: np.ndarray
    breakdown_uj: dict
    useful_macs: int
    dense_ops: int
    time_us: float

    @property
    def power_w(self) -> float:
        return self.energy_uj / self.time_us if self.time_us > 0 else 0.0

    @property
    def pj_per_useful_mac(self) -> float:
        return 1e6 * self.energy_uj / self.useful_macs if self.useful_macs else float("nan")

    @property
    def gops(self) -> float:
        """Dense-equivalent GOP/s: 2 M K operations over the layer's time."""
        return self.dense_ops / (self.time_us * 1e3) if self.time_us > 0 else 0.0

    @property
    def gops_per_watt(self) -> float:
        return self.dense_ops / (self.energy_uj * 1e3) if self.energy_uj > 0 else 0.0


def idle_pj_per_cycle(num_pes: int) -> float:
    """The whole chip's draw per cycle while it waits: every PE's clock network and the
    LNZD tree."""
    return num_pes * IDLE_PJ + lnzd_units(num_pes) * LNZD_UNIT_PJ_PER_CYCLE


def event_energy(counts, pe_busy, total: int, num_pes: int) -> tuple[np.ndarray, dict]:
    """The event model of one run: (each PE's pJ, {entries, broadcasts, idle, lnzd} in µJ).

    counts (N, B): entries per PE in each broadcast column; pe_busy (N,) entry cycles;
    total: the run's cycles (DRAM waits included). A PE works its entry cycles and one
    pointer-only cycle per broadcast column in which it has no entry; the rest is idle.
    """
    counts = np.asarray(counts)
    entries = np.asarray(pe_busy, np.int64)
    broadcasts = counts.shape[1]
    working = entries + np.sum(counts == 0, axis=1)  # entry cycles + pointer-only cycles
    idle = np.maximum(total - working, 0)
    pe_pj = entries * ENTRY_PJ + broadcasts * BROADCAST_PJ + idle * IDLE_PJ
    breakdown = {
        "entries": float(entries.sum() * ENTRY_PJ) * 1e-6,
        "broadcasts": float(num_pes * broadcasts * BROADCAST_PJ) * 1e-6,
        "idle": float(idle.sum() * IDLE_PJ) * 1e-6,
        "lnzd": lnzd_units(num_pes) * LNZD_UNIT_PJ_PER_CYCLE * total * 1e-6,
    }
    return pe_pj, breakdown


def batch_energy(layer, active, pe_busy, total_cycles, cfg, memory_plan=None) -> dict:
    """The event model of B runs at once, as `layer_energy` counts one: per-run arrays (B,).

    layer: the EncodedLayer; active (B, K): which inputs were broadcast (nonzero once
    quantised); pe_busy (B, N) and total_cycles (B,): the runs' SimResult fields. Returns
    {entries, broadcasts, idle, lnzd, dram} in µJ, time_us (DRAM waits included) and
    useful_macs, each (B,).
    """
    real = np.count_nonzero(np.asarray(layer.slice_codes), axis=(1, 2))  # (K,)
    return counts_energy(
        layer.counts, real, active, pe_busy, total_cycles, num_pes=cfg.num_pes,
        clock_mhz=cfg.clock_mhz, memory_plan=memory_plan,
    )  # fmt: skip


def counts_energy(
    counts, real, active, pe_busy, total_cycles, *, num_pes, clock_mhz, memory_plan=None
) -> dict:
    """`batch_energy` from a layer's entry counts (N, K) and its nonzero weights per
    column `real` (K,; None: useful_macs 0), without the encoded layer."""
    active = np.asarray(active, np.int64)
    busy = np.asarray(pe_busy, np.int64)
    counts = np.asarray(counts)  # (N, K)
    compute_us = np.asarray(total_cycles, np.float64) / clock_mhz
    time_us = compute_us if memory_plan is None else np.maximum(compute_us, memory_plan.dram_us)
    total = np.round(time_us * clock_mhz).astype(np.int64)
    working = busy + active @ (counts == 0).T.astype(np.int64)  # entry + pointer-only cycles
    idle = np.maximum(total[:, None] - working, 0)
    dram = 0.0 if memory_plan is None else memory_plan.dram_energy_uj
    return {
        "entries": busy.sum(axis=1) * ENTRY_PJ * 1e-6,
        "broadcasts": num_pes * active.sum(axis=1) * BROADCAST_PJ * 1e-6,
        "idle": idle.sum(axis=1) * IDLE_PJ * 1e-6,
        "lnzd": lnzd_units(num_pes) * LNZD_UNIT_PJ_PER_CYCLE * total * 1e-6,
        "dram": np.full(len(total), dram),
        "time_us": time_us,
        "useful_macs": np.zeros(len(total), np.int64) if real is None else active @ real,
    }


def layer_energy(layer, x, result, cfg, memory_plan=None) -> LayerEnergy:
    """The energy of one run of `layer` (EncodedLayer) on input x (K,) that gave `result`.

    result: the SimResult of eie.simulate (its total_cycles, pe_busy); memory_plan: a
    memory.MemoryPlan when the layer streams from DRAM (its time and energy are added).
    """
    active = np.asarray(fixed_point.quantize(x, cfg.act_frac_bits)) != 0
    counts = np.asarray(layer.counts)[:, active]  # (N, broadcasts)
    real = np.count_nonzero(np.asarray(layer.slice_codes)[active], axis=2)  # (B, N)
    compute_us = int(result.total_cycles) / cfg.clock_mhz
    time_us = memory_plan.time_us(compute_us) if memory_plan is not None else compute_us
    total = round(time_us * cfg.clock_mhz)  # cycles, DRAM waits included
    pe_pj, breakdown = event_energy(counts, result.pe_busy, total, cfg.num_pes)
    breakdown["dram"] = memory_plan.dram_energy_uj if memory_plan is not None else 0.0
    m, k = layer.shape
    return LayerEnergy(
        energy_uj=sum(breakdown.values()),
        pe_power_mw=pe_pj * cfg.clock_mhz * 1e-3 / max(total, 1),
        breakdown_uj=breakdown,
        useful_macs=int(real.sum()),
        dense_ops=2 * m * k,
        time_us=time_us,
    )
