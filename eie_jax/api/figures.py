"""A layer on EIE in figures: `LayerFigures` per layer, `EIEReport` for a model's run.

LayerFigures holds a layer's program (shape, densities, formats, entries and padding, SRAM
need per PE) and what its runs cost, summed over the activation vectors run (cycles under
the paper's and the rtl timing, time, energy by event, load efficiency); EIEReport lists
them in the order the forward called the layers, with totals, the mean per model input,
`to_dict()` and `to_markdown()`.

Two ways in, one type out: from an encoded layer and full simulations
(`for_layer` + `add_runs`: `on_eie.EIESession`, the Table III bench) or from entry counts
and the timing recurrence alone (`from_counts` + `add_timing`: other PE counts in compare,
the LLM-scale projection, the design-space sweeps).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax import eie
from eie_jax.eie import energy, fixed_point, memory, metrics

ENERGY_EVENTS = ("entries", "broadcasts", "idle", "lnzd", "dram")


@dataclasses.dataclass
class LayerFigures:
    """One layer on EIE: its program and what its runs cost (totals over `vectors` runs).

    shape: (M, K) of the matrix EIE holds; weight_density: nonzero weights / (M K);
    input_density: mean fraction of nonzero (quantised) inputs; cycles / rtl_cycles:
    summed over runs under the paper's and the reference simulator's timing (rtl None when
    not run); time_us: summed, DRAM streaming included; energy_uj: summed by event;
    load_efficiency: mean over runs; entries, padding: the encoded matrix's entries and
    how many of them are padding; sram_bytes: the largest per-PE need of each SRAM,
    sram_capacity its size, fits_sram whether every PE's weights fit.
    """

    name: str
    shape: tuple[int, int]
    weight_bits: int
    weight_density: float
    act_frac_bits: int
    weight_frac_bits: int
    num_pes: int
    entries: int
    padding: int
    sram_bytes: dict
    sram_capacity: dict
    fits_sram: bool
    clock_mhz: float
    stored_bytes: dict
    calls: int = 0
    vectors: int = 0
    input_density: float = 0.0
    cycles: int = 0
    rtl_cycles: int | None = None
    time_us: float = 0.0
    energy_uj: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(ENERGY_EVENTS, 0.0))
    useful_macs: int = 0
    load_efficiency: float = 0.0
    busy: int = 0

    @classmethod
    def for_layer(cls, name: str, encoded, cfg: eie.EIEConfig) -> LayerFigures:
        """A layer's program figures from its EncodedLayer, before any run."""
        nonzeros = int(np.count_nonzero(encoded.codes))
        return cls.from_counts(name, encoded.counts, cfg, shape=encoded.shape, nonzeros=nonzeros)

    @classmethod
    def from_counts(cls, name: str, counts, cfg: eie.EIEConfig, *, shape, nonzeros: int):
        """A layer's program figures from its entry counts (N, K) (`eie.column_counts`:
        entries per PE and column, padding included) and its nonzero weights."""
        counts, nonzeros = np.asarray(counts), int(nonzeros)
        m, k = (int(d) for d in shape)
        bits = cfg.weight_bits + cfg.index_bits
        sram = memory.sram_bytes(counts.sum(axis=1), (m, k), cfg.num_pes, bits)
        need = {s: int(np.max(sram[s])) for s in memory.SRAMS}
        have = memory.capacity_bytes(cfg)
        entries = int(counts.sum())
        return cls(
            name=name,
            shape=(m, k),
            weight_bits=cfg.weight_bits,
            weight_density=nonzeros / max(m * k, 1),
            act_frac_bits=cfg.act_frac_bits,
            weight_frac_bits=cfg.weight_frac_bits,
            num_pes=cfg.num_pes,
            entries=entries,
            padding=entries - nonzeros,
            sram_bytes=need,
            sram_capacity=have,
            fits_sram=all(need[s] <= have[s] for s in memory.SRAMS),
            clock_mhz=float(cfg.clock_mhz),
            stored_bytes={s: int(np.sum(sram[s])) for s in ("spmat", "ptr")},
        )

    def add_runs(self, *, active, paper, rtl, events) -> None:
        """Adds B runs: active (B, K) broadcast inputs, the paper and rtl SimResults' cycles
        fields as NumPy, and `energy.batch_energy`'s per-run events."""
        b = len(active)
        total = self.vectors + b
        mean = lambda old, new: (old * self.vectors + float(np.sum(new))) / total
        self.input_density = mean(self.input_density, np.mean(active, axis=1))
        self.load_efficiency = mean(self.load_efficiency, paper["load_efficiency"])
        self.cycles += int(np.sum(paper["total_cycles"]))
        if rtl is not None:
            self.rtl_cycles = (self.rtl_cycles or 0) + int(np.sum(rtl["total_cycles"]))
        self.time_us += float(np.sum(events["time_us"]))
        for event in ENERGY_EVENTS:
            self.energy_uj[event] += float(np.sum(events[event]))
        self.useful_macs += int(np.sum(events["useful_macs"]))
        self.busy += int(np.sum(paper["pe_busy"]))
        self.vectors = total

    def add_simulations(self, encoded, x, result, cfg, *, rtl=None, plan=None, energy_from="paper"):
        """Adds the runs of x (B, K) from full simulations: `result` (and `rtl`, the rtl
        timing's) are `eie.simulate_batch` results whose first B rows are x's runs; plan: a
        memory.MemoryPlan when the weights stream from DRAM; energy_from: which timing the
        energy events follow. Returns the runs' (paper, rtl) cycles fields as NumPy."""
        n = len(x)
        take = lambda res, fields: {f: np.asarray(getattr(res, f))[:n] for f in fields}  # noqa: E731
        paper = take(result, ("total_cycles", "pe_busy", "load_efficiency"))
        rtl = None if rtl is None else take(rtl, ("total_cycles", "pe_busy"))
        active = np.asarray(fixed_point.quantize(x, cfg.act_frac_bits)) != 0
        timed = rtl if energy_from == "rtl" else paper
        events = energy.batch_energy(
            encoded, active, timed["pe_busy"], timed["total_cycles"], cfg, plan
        )
        self.add_runs(active=active, paper=paper, rtl=rtl, events=events)
        return paper, rtl

    def add_timing(self, pe_cycles, pe_busy, active, *, counts=None, real=None) -> None:
        """Adds B runs timed by the recurrence alone (`eie.cycles_from_counts`, no
        arithmetic): pe_cycles and pe_busy (B, N), active (B, K) the broadcast inputs.
        With the layer's counts (N, K) and its nonzero weights per column `real` (K,),
        energy by event too (`energy.counts_energy`, weights on chip)."""
        pe_cycles, pe_busy = np.asarray(pe_cycles, np.int64), np.asarray(pe_busy, np.int64)
        total = pe_cycles.max(axis=1)
        paper = dict(
            total_cycles=total,
            pe_busy=pe_busy,
            load_efficiency=np.asarray(metrics.load_efficiency(pe_busy, total)),
        )
        if counts is None:
            time_us = total / self.clock_mhz
            events = dict.fromkeys(ENERGY_EVENTS, 0.0) | dict(time_us=time_us, useful_macs=0)
        else:
            events = energy.counts_energy(
                counts, real, active, pe_busy, total, num_pes=self.num_pes,
                clock_mhz=self.clock_mhz,
            )  # fmt: skip
        self.add_runs(active=np.asarray(active), paper=paper, rtl=None, events=events)

    @property
    def weight_bytes(self) -> int:
        """The EIE-format weights of all PEs (Spmat + Ptr SRAM contents)."""
        return self.stored_bytes["spmat"] + self.stored_bytes["ptr"]

    @property
    def total_energy_uj(self) -> float:
        return float(sum(self.energy_uj.values()))

    # Figures of merit over all runs (energy.LayerEnergy's, for one run).
    @property
    def power_w(self) -> float:
        return self.total_energy_uj / self.time_us if self.time_us > 0 else 0.0

    @property
    def pj_per_useful_mac(self) -> float:
        macs = self.useful_macs
        return 1e6 * self.total_energy_uj / macs if macs else float("nan")

    @property
    def dense_ops(self) -> int:
        """2 M K operations per run, summed over the runs."""
        return 2 * self.shape[0] * self.shape[1] * self.vectors

    @property
    def gops(self) -> float:
        """Dense-equivalent GOP/s."""
        return self.dense_ops / (self.time_us * 1e3) if self.time_us > 0 else 0.0

    @property
    def gops_per_watt(self) -> float:
        energy_uj = self.total_energy_uj
        return self.dense_ops / (energy_uj * 1e3) if energy_uj > 0 else 0.0

    def per_vector(self, value: float) -> float:
        return value / self.vectors if self.vectors else 0.0

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["shape"] = list(self.shape)
        out["total_energy_uj"] = self.total_energy_uj
        out["mean_per_vector"] = {
            "cycles": self.per_vector(self.cycles),
            "rtl_cycles": None if self.rtl_cycles is None else self.per_vector(self.rtl_cycles),
            "time_us": self.per_vector(self.time_us),
            "energy_uj": self.per_vector(self.total_energy_uj),
        }
        return out


MARKDOWN_HEADER = (
    "| layer | M x K | weights | inputs | vectors | cycles/vector | rtl/vector | µs/vector "
    "| µJ/vector | load eff. | entries (padding) | Spmat B/PE | fits |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def markdown_row(f: LayerFigures) -> str:
    rtl = "-" if f.rtl_cycles is None else f"{f.per_vector(f.rtl_cycles):.1f}"
    return (
        f"| {f.name} | {f.shape[0]} x {f.shape[1]} | {f.weight_density:.1%} "
        f"| {f.input_density:.1%} | {f.vectors} | {f.per_vector(f.cycles):.1f} | {rtl} "
        f"| {f.per_vector(f.time_us):.3f} | {f.per_vector(f.total_energy_uj):.4f} "
        f"| {f.load_efficiency:.1%} | {f.entries} ({f.padding}) | {f.sram_bytes['spmat']} "
        f"| {'yes' if f.fits_sram else 'NO'} |"
    )


@dataclasses.dataclass
class EIEReport:
    """Per layer in first-call order, and totals. `num_inputs`: the model inputs' leading
    size (the examples run); `per_input` divides the totals by it."""

    layers: list[LayerFigures]
    num_inputs: int
    config: eie.EIEConfig
    programs: dict = dataclasses.field(default_factory=dict, repr=False)
    recorded: dict = dataclasses.field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> LayerFigures:
        for f in self.layers:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def totals(self) -> dict:
        rtl = [f.rtl_cycles for f in self.layers]
        energy_uj = {e: sum(f.energy_uj[e] for f in self.layers) for e in ENERGY_EVENTS}
        return {
            "cycles": sum(f.cycles for f in self.layers),
            "rtl_cycles": None if None in rtl else sum(rtl),
            "time_us": sum(f.time_us for f in self.layers),
            "energy_uj": energy_uj,
            "total_energy_uj": sum(energy_uj.values()),
            "useful_macs": sum(f.useful_macs for f in self.layers),
            "fits_sram": all(f.fits_sram for f in self.layers),
        }

    @property
    def per_input(self) -> dict:
        t, n = self.totals, max(self.num_inputs, 1)
        return {
            "cycles": t["cycles"] / n,
            "rtl_cycles": None if t["rtl_cycles"] is None else t["rtl_cycles"] / n,
            "time_us": t["time_us"] / n,
            "energy_uj": t["total_energy_uj"] / n,
        }

    def to_dict(self) -> dict:
        return {
            "layers": [f.to_dict() for f in self.layers],
            "num_inputs": self.num_inputs,
            "totals": self.totals,
            "per_input": self.per_input,
            "config": dataclasses.asdict(self.config),
        }

    def to_markdown(self) -> str:
        p = self.per_input
        rtl = "-" if p["rtl_cycles"] is None else f"{p['rtl_cycles']:.1f}"
        lines = [MARKDOWN_HEADER, *map(markdown_row, self.layers)]
        lines.append(
            f"\nPer input ({self.num_inputs} run, {self.config.num_pes} PEs at "
            f"{self.config.clock_mhz:g} MHz): {p['cycles']:.1f} cycles (rtl {rtl}), "
            f"{p['time_us']:.3f} µs, {p['energy_uj']:.4f} µJ."
        )
        return "\n".join(lines)
