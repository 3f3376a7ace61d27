"""What changes at LLM scale: a 7B-class decoder's matrices on EIE, by simulation.

One synthetic matrix per distinct shape of Llama-2-7B (d_model 4096, MLP 11008, 32 layers,
32K vocabulary) is pruned uniformly at random to the given sparsity, given uniformly
random 4-bit codes (1..15; 0 is the pruned zero) and simulated once on EIE (paper timing,
timing only: `column_counts` and `cycles_from_counts`, the numbers `eie.simulate` gives)
with an input whose nonzero fraction is the shape's stated activation density; the
per-token figures multiply each shape's result by its count per token:

  q, k, v, o      4096 x 4096   x 4 x 32 layers   input density 1 (attention inputs)
  gate, up       11008 x 4096   x 2 x 32          density 1 (LayerNorm outputs)
  down            4096 x 11008  x 1 x 32          density `down_density` (an assumption:
                                                  Llama's SwiGLU is not sparse; we use the
                                                  measured ReLU density of the char LM)
  head           32000 x 4096   x 1               density 1

Three ways to hold the weights, per token (decoder layers are sequential):
  SRAM-resident: each matrix on its own `num_pes` PEs (enough SRAM when every PE's
    bytes fit), time = sum of compute;
  DRAM-streamed: each matrix's EIE-format bytes (Spmat + Ptr, memory.sram_bytes) stream
    once per token at `gbps`, overlapped: time = sum over matrices of max(compute, bytes /
    bandwidth); energy adds 640 pJ per 32 bits (memory.DRAM_PJ_PER_32_BITS);
  linear int4 g128 (the software baseline's traffic): 4.16 bits per weight, no sparsity
    skipping, memory-bound: time = bytes / bandwidth, DRAM energy only.
EIE's energy per matrix follows energy.py's event model (entries, broadcasts, idle
cycles at the clock network's power, the LNZD tree), DRAM waits counted as idle.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax import eie
from eie_jax.api.figures import LayerFigures
from eie_jax.eie import energy, memory, timing
from eie_jax.utils import plotting, schema

D_MODEL, D_MLP, NUM_LAYERS, VOCAB = 4096, 11008, 32, 32000
INT4_G128_BITS = 4.16  # 4-bit weights + a 16-bit scale and a 4-bit zero per 128 (AWQ/GPTQ)
CODEBOOK = np.concatenate([[0.0], np.linspace(-1, 1, 15)]).astype(np.float32)  # synthetic


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    rows: int  # M, outputs
    cols: int  # K, inputs
    count: int  # per token
    density: float  # input activation density


def llama2_7b_shapes(down_density: float, shrink: int = 1) -> list[Shape]:
    """Llama-2-7B's FC matrices per token (see the module docstring); shrink divides
    every dimension (for smoke runs)."""
    d, f, v = D_MODEL // shrink, D_MLP // shrink, VOCAB // shrink
    return [
        Shape("qkvo", d, d, 4 * NUM_LAYERS, 1.0),
        Shape("gate_up", f, d, 2 * NUM_LAYERS, 1.0),
        Shape("down", d, f, NUM_LAYERS, down_density),
        Shape("head", v, d, 1, 1.0),
    ]


def synthetic_codes(rows: int, cols: int, sparsity: float, rng) -> np.ndarray:
    """(rows, cols) uint8 codes: uniform in 1..15, each zeroed with probability sparsity."""
    codes = rng.integers(1, 16, (rows, cols), dtype=np.uint8)
    codes[rng.random((rows, cols), dtype=np.float32) < sparsity] = 0
    return codes


def simulate_matrix(shape: Shape, sparsity: float, cfg: eie.EIEConfig, rng) -> LayerFigures:
    """Encodes (counts only) and times one synthetic matrix of `shape` on cfg's EIE: one
    run (one token), energy by event with the weights on chip."""
    m, k, n = shape.rows, shape.cols, cfg.num_pes
    codes = synthetic_codes(m, k, sparsity, rng)
    counts = eie.column_counts(codes, n, cfg.index_bits, cfg.weight_bits)
    real = np.count_nonzero(codes, axis=0)  # nonzero weights per column
    del codes
    out = LayerFigures.from_counts(shape.name, counts, cfg, shape=(m, k), nonzeros=real.sum())
    active = np.zeros(k, bool)
    active[rng.permutation(k)[: round(shape.density * k)]] = True
    history = timing.history_size(cfg.fifo_depth)
    pe_cycles, busy = timing.cycles_from_counts(
        jnp.asarray(counts), jnp.asarray(active), cfg.fifo_depth, history=history
    )
    out.add_timing(
        np.asarray(pe_cycles)[None], np.asarray(busy)[None], active[None], counts=counts, real=real
    )
    return out


def streamed(run: LayerFigures, gbps: float) -> tuple[float, float, bool]:
    """(time µs, energy µJ, memory-bound) of one run with its weights streamed at gbps;
    waiting for DRAM, the chip draws its idle power (clock network and LNZD tree)."""
    transfer = memory.dram_us(run.weight_bytes, gbps)
    time_us = max(run.time_us, transfer)
    wait_cycles = (time_us - run.time_us) * run.clock_mhz
    uj = run.total_energy_uj + wait_cycles * energy.idle_pj_per_cycle(run.num_pes) * 1e-6
    return time_us, uj + memory.dram_energy_uj(run.weight_bytes), transfer > run.time_us


def per_token(shapes: list[Shape], runs: list[LayerFigures], cfg, bandwidths) -> dict:
    """Per-token totals of one sparsity and EIE size (runs: one per shape)."""
    pairs = list(zip([s.count for s in shapes], runs, strict=True))
    weights = sum(s.count * s.rows * s.cols for s in shapes)
    spmat = sum(c * r.stored_bytes["spmat"] for c, r in pairs)
    total_bytes = sum(c * r.weight_bytes for c, r in pairs)
    cycles = sum(c * r.cycles for c, r in pairs)
    out = {
        "num_pes": cfg.num_pes,
        "weights": weights,
        "eie_bytes": total_bytes,
        "spmat_bytes": spmat,
        "fits_64pe_chip": total_bytes <= 64 * 1024 * (cfg.spmat_kb + cfg.ptr_kb),
        "min_pes_by_spmat": math.ceil(spmat / (cfg.spmat_kb * 1024)),
        "sram_pes": sum(c for c, _ in pairs) * cfg.num_pes,
        "sram_fits_per_matrix": all(r.fits_sram for r in runs),
        "cycles": cycles,
        "compute_us": cycles / cfg.clock_mhz,
        "compute_energy_uj": sum(c * r.total_energy_uj for c, r in pairs),
        "load_efficiency": {r.name: r.load_efficiency for r in runs},
        "dram": {},
    }
    out["sram_tokens_per_s"] = 1e6 / out["compute_us"]
    int4_bytes = weights * INT4_G128_BITS / 8
    for gbps in bandwidths:
        stream = [streamed(r, gbps) for r in runs]
        time_us = sum(c * st[0] for (c, _), st in zip(pairs, stream, strict=True))
        bound = sum(c for (c, _), st in zip(pairs, stream, strict=True) if st[2])
        out["dram"][gbps] = {
            "time_us": time_us,
            "tokens_per_s": 1e6 / time_us,
            "energy_mj": 1e-3 * sum(c * st[1] for (c, _), st in zip(pairs, stream, strict=True)),
            "memory_us": memory.dram_us(total_bytes, gbps),
            "memory_bound_matrices": f"{bound}/{sum(c for c, _ in pairs)}",
            "int4_g128_tokens_per_s": 1e6 / memory.dram_us(int4_bytes, gbps),
            "int4_g128_energy_mj": 1e-3 * memory.dram_energy_uj(int4_bytes),
        }
    return out


def crossover(sparsities, compute_us, memory_us) -> float | None:
    """The sparsity where memory time falls to compute time (linear in log ratio), or None."""
    r = np.log(np.asarray(memory_us) / np.asarray(compute_us))
    for i in range(len(r) - 1):
        if r[i] == 0:
            return float(sparsities[i])
        if r[i] * r[i + 1] < 0:
            t = r[i] / (r[i] - r[i + 1])
            return float(sparsities[i] + t * (sparsities[i + 1] - sparsities[i]))
    return float(sparsities[-1]) if r[-1] == 0 else None


def section() -> schema.Section:
    """The schema of experiments.llm_scale: every field, its default and what it allows."""
    S, integer, number, sequence = schema.Section, schema.integer, schema.number, schema.sequence
    return S(
        dict(
            seed=integer(0, lo=0),
            sparsities=sequence(
                [0.0, 0.5, 0.7, 0.9], number(0.0, 0, 1, below=True), increasing=True
            ),
            # Input density of the MLP down projection: an assumption, the ReLU density
            # measured on the char transformer's MLP; every other input is dense.
            down_density=number(0.4, 0, 1, above=True),
            # EIE sizes simulated; SRAM-resident: one such EIE per matrix
            num_pes=sequence([64, 1024], integer(64, lo=1)),
            bandwidths_gbps=sequence([50.0, 1000.0], number(50.0, 0, above=True)),
            shrink=integer(1, lo=1, doc="divides every matrix dimension (1: full size)"),
            eie=eie.config.section("fifo_depth", "index_bits", "weight_bits"),
            # Times one rows x cols matrix fully simulated (encode + eie.simulate) on this
            # many PEs, at sparsity 0.
            timed=S(
                dict(
                    rows=integer(4096, lo=1),
                    cols=integer(11008, lo=1),
                    num_pes=integer(1024, lo=1),
                )
            ),
        )
    )


def validate(config) -> None:
    """UserError naming the first bad field of an llm_scale config."""
    schema.check(config, section())


def time_full_simulation(rows: int, cols: int, cfg: eie.EIEConfig, rng) -> dict:
    """Seconds to simulate a dense rows x cols matrix, first calls (compilation included):
    the projection's timing-only path (simulate_matrix), and encode + eie.simulate with
    the arithmetic; the cycles of both (equal)."""
    start = time.perf_counter()
    quick = simulate_matrix(Shape("timed", rows, cols, 1, 1.0), 0.0, cfg, rng)
    timing_only = time.perf_counter() - start
    start = time.perf_counter()
    layer = eie.encode(synthetic_codes(rows, cols, 0.0, rng), CODEBOOK, cfg)
    encoded = time.perf_counter()
    x = jnp.ones(cols, jnp.float32)
    res = jax.block_until_ready(eie.simulate(layer, x, cfg))
    done = time.perf_counter()
    return {
        "shape": [rows, cols],
        "num_pes": cfg.num_pes,
        "encode_s": encoded - start,
        "simulate_s": done - encoded,
        "total_s": done - start,
        "cycles": int(res.total_cycles),
        "timing_only_s": timing_only,
        "timing_only_cycles": quick.cycles,
    }


def project(config, log=print) -> dict:
    """Every sparsity on every EIE size: {"rows": [per_token dicts], "timed": ...}."""
    rng = np.random.default_rng(config.seed)
    base = eie.EIEConfig.from_dict(config.eie)
    shapes = llama2_7b_shapes(config.down_density, config.shrink)
    rows = []
    for num_pes in config.num_pes:
        cfg = base.replace(num_pes=num_pes)
        for sparsity in config.sparsities:
            runs = [simulate_matrix(shape, sparsity, cfg, rng) for shape in shapes]
            rows.append(
                dict(sparsity=sparsity, **per_token(shapes, runs, cfg, config.bandwidths_gbps))
            )
            log(f"{num_pes} PEs, sparsity {sparsity:.0%}: {rows[-1]['compute_us']:.0f} µs/token")
    timed = time_full_simulation(
        config.timed.rows, config.timed.cols, base.replace(num_pes=config.timed.num_pes), rng
    )
    log(f"timed: {timed}")
    return {
        "rows": rows,
        "timed": timed,
        "down_density": config.down_density,
        "shapes": [dataclasses.asdict(s) for s in shapes],
    }


def to_markdown(result) -> str:
    """Two tables: weights and SRAM fit; time and energy per token per bandwidth."""
    rows = result["rows"]
    out = [
        "| EIE PEs | pruned | EIE-format MB | fits 64-PE chip | PEs to hold (Spmat) "
        "| PEs, one EIE per matrix | cycles/token | µs/token | tokens/s if SRAM-resident "
        "| load eff. (qkvo/gate_up/down/head) | compute energy mJ/token |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        eff = "/".join(f"{v:.2f}" for v in r["load_efficiency"].values())
        out.append(
            f"| {r['num_pes']} | {r['sparsity']:.0%} | {r['eie_bytes'] / 1e6:,.0f} "
            f"| {'yes' if r['fits_64pe_chip'] else 'no'} | {r['min_pes_by_spmat']:,} "
            f"| {r['sram_pes']:,} ({'fits' if r['sram_fits_per_matrix'] else 'short'}) "
            f"| {r['cycles']:,} | {r['compute_us']:,.0f} | {r['sram_tokens_per_s']:,.1f} "
            f"| {eff} | {r['compute_energy_uj'] / 1e3:.2f} |"
        )
    out += [
        "",
        "| EIE PEs | pruned | DRAM GB/s | memory µs | EIE µs/token | EIE tokens/s "
        "| memory-bound matrices | crossover GB/s | EIE mJ/token | int4 g128 tokens/s "
        "| int4 g128 mJ/token |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        for gbps, d in r["dram"].items():
            out.append(
                f"| {r['num_pes']} | {r['sparsity']:.0%} | {gbps:g} | {d['memory_us']:,.0f} "
                f"| {d['time_us']:,.0f} | {d['tokens_per_s']:,.1f} "
                f"| {d['memory_bound_matrices']} | {r['eie_bytes'] / r['compute_us'] / 1e3:,.0f} "
                f"| {d['energy_mj']:.1f} "
                f"| {d['int4_g128_tokens_per_s']:,.1f} | {d['int4_g128_energy_mj']:.1f} |"
            )
    return "\n".join(out) + "\n"


def plot(result, path: str) -> str:
    """Tokens/s vs sparsity: SRAM-resident (where every matrix fits its PEs) and each
    bandwidth per EIE size, int4 g128 dashed. Filled markers: compute-bound tokens, open:
    memory-bound; the legend gives each streamed line's crossover bandwidth (compute =
    memory) per sparsity, and a crossover in sparsity is marked when there is one."""
    rows = result["rows"]
    fig = plotting.lines_figure(
        {}, xlabel="weights pruned (%)", ylabel="tokens / s (batch 1)",
        title="Llama-2-7B shapes on EIE, 4-bit k-means (open markers: memory-bound)",
        logy=10, figsize=(7.6, 5.6),
    )  # fmt: skip
    ax = fig.axes[0]
    for num_pes in sorted({r["num_pes"] for r in rows}):
        sel = [r for r in rows if r["num_pes"] == num_pes]
        xs = [100 * r["sparsity"] for r in sel]
        if all(r["sram_fits_per_matrix"] for r in sel):
            ax.plot(xs, [r["sram_tokens_per_s"] for r in sel], "k-o", ms=4,
                    label=f"SRAM-resident ({num_pes} PEs per matrix)")  # fmt: skip
        for gbps in sel[0]["dram"]:
            ys = [r["dram"][gbps]["tokens_per_s"] for r in sel]
            cross = ", ".join(f"{r['eie_bytes'] / r['compute_us'] / 1e3:,.0f}" for r in sel)
            (line,) = ax.plot(xs, ys, "-", label=f"{num_pes} PEs, {float(gbps):g} GB/s "
                              f"(crossover at {cross} GB/s)")  # fmt: skip
            for x, y, r in zip(xs, ys, sel, strict=True):
                bound = r["dram"][gbps]["memory_us"] > r["compute_us"]
                ax.plot(x, y, "o", color=line.get_color(), mfc="white" if bound else None)
            at = crossover(
                [r["sparsity"] for r in sel],
                [r["compute_us"] for r in sel],
                [r["dram"][gbps]["memory_us"] for r in sel],
            )
            if at is not None:
                ax.axvline(100 * at, color=line.get_color(), lw=0.8, ls=":")
    for gbps, style in zip(rows[0]["dram"], ("--", "-."), strict=False):
        value = rows[0]["dram"][gbps]["int4_g128_tokens_per_s"]
        ax.axhline(
            value, color="gray", ls=style, lw=1, label=f"int4 g128 traffic, {float(gbps):g} GB/s"
        )
    ax.legend(fontsize=6, loc="upper left")
    return plotting.save(fig, path)
