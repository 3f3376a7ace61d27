"""A layer on EIE in figures: `LayerFigures` per layer, `EIEReport` for a model's run.

LayerFigures holds a layer's program (shape, densities, formats, entries and padding, SRAM
need per PE) and what its runs cost, summed over the activation vectors run (cycles under
the paper's and the rtl timing, time, energy by event, load efficiency); EIEReport lists
them in the order the forward called the layers, with totals, the mean per model input,
`to_dict()` and `to_markdown()`. `on_eie.EIESession` builds them from simulations.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax import eie
from eie_jax.eie import memory

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
    calls: int = 0
    vectors: int = 0
    input_density: float = 0.0
    cycles: int = 0
    rtl_cycles: int | None = None
    time_us: float = 0.0
    energy_uj: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(ENERGY_EVENTS, 0.0))
    useful_macs: int = 0
    load_efficiency: float = 0.0

    @classmethod
    def for_layer(cls, name: str, encoded, cfg: eie.EIEConfig) -> LayerFigures:
        """A layer's program figures, before any run."""
        need = {s: int(np.max(getattr(encoded, f"{s}_bytes"))) for s in memory.SRAMS}
        have = memory.capacity_bytes(cfg)
        m, k = encoded.shape
        return cls(
            name=name,
            shape=(int(m), int(k)),
            weight_bits=cfg.weight_bits,
            weight_density=float(np.count_nonzero(encoded.codes)) / max(m * k, 1),
            act_frac_bits=cfg.act_frac_bits,
            weight_frac_bits=cfg.weight_frac_bits,
            num_pes=cfg.num_pes,
            entries=int(encoded.num_entries),
            padding=int(encoded.num_padding),
            sram_bytes=need,
            sram_capacity=have,
            fits_sram=all(need[s] <= have[s] for s in memory.SRAMS),
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
        self.vectors = total

    @property
    def total_energy_uj(self) -> float:
        return float(sum(self.energy_uj.values()))

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
