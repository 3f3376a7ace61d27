"""Benchmarks the EIE model on the nine Table III layers and draws the design-space figures.

    python -m experiments.bench_eie --config=configs/eie_benchmarks.py --workdir=runs/bench_eie

Prints (and writes to WORKDIR/bench_eie.{json,md}) one row per layer: cycles, time at the
clock, the paper's actual and theoretical times (ISCA 2016 Table IV), our/paper ratio,
load efficiency, padding share, and wall times (medians after compilation) for encoding,
cycles only, and outputs + cycles. Figures: load efficiency vs FIFO depth (paper Fig. 8)
and speedup vs PE count (Fig. 11).
"""

import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from eie_jax import eie, plotting
from eie_jax.eie import benchmarks

_CONFIG = config_flags.DEFINE_config_file("config", None, "Benchmark config.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and figures go.")
flags.mark_flags_as_required(["config", "workdir"])


def median_time(fn, repeats):
    """Median wall time of fn() over `repeats` runs, after one run that compiles."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layer_row(spec, config, cfg):
    codes, codebook, x = benchmarks.synthetic_layer(spec, config.seed, cfg)
    encode_s = median_time(lambda: eie.encode(codes, codebook, cfg).slice_codes, config.repeats)
    layer = eie.encode(codes, codebook, cfg)
    res = eie.simulate(layer, x, cfg)
    return dict(
        layer=spec.name,
        shape=list(spec.shape),
        cycles=int(res.total_cycles),
        time_us=float(res.time_us),
        paper_actual_us=spec.paper_actual_us,
        paper_theoretical_us=spec.paper_theoretical_us,
        ratio_vs_paper=float(res.time_us) / spec.paper_actual_us,
        load_efficiency=float(res.load_efficiency),
        padding_share=layer.num_padding / max(layer.num_entries, 1),
        encode_s=encode_s,
        cycles_only_s=median_time(lambda: eie.simulate_cycles(layer, x, cfg), config.repeats),
        outputs_and_cycles_s=median_time(lambda: eie.simulate(layer, x, cfg), config.repeats),
    )


def batch_timing(config, cfg):
    spec = benchmarks.get_spec(config.batch_layer)
    codes, codebook, _ = benchmarks.synthetic_layer(spec, config.seed, cfg)
    layer = eie.encode(codes, codebook, cfg)
    rng = np.random.default_rng(config.seed + 1)
    k = spec.in_features
    xs = np.abs(rng.standard_normal((config.batch_size, k)))
    xs *= rng.random((config.batch_size, k)) < spec.act_density
    xs = jnp.asarray(xs, jnp.float32)
    seconds = median_time(lambda: eie.simulate_batch(layer, xs, cfg), config.repeats)
    return dict(layer=spec.name, batch_size=config.batch_size, seconds=seconds)


def fifo_sweep(spec, config, cfg):
    """Load efficiency vs FIFO depth: one vmapped call over all depths (Fig. 8)."""
    codes, _, x = benchmarks.synthetic_layer(spec, config.seed, cfg)
    counts = jnp.asarray(eie.column_counts(codes, cfg.num_pes, cfg.index_bits))
    active = jnp.asarray(x != 0)
    depths = jnp.asarray(config.fifo_depths, jnp.int32)
    history = eie.history_size(max(config.fifo_depths))
    cycles, busy = jax.vmap(lambda d: eie.cycles_from_counts(counts, active, d, history=history))(
        depths
    )
    return (jnp.mean(busy, axis=1) / jnp.max(cycles, axis=1)).tolist()


def pe_sweep(spec, config, cfg):
    """Speedup over one PE vs PE count (Fig. 11)."""
    codes, _, x = benchmarks.synthetic_layer(spec, config.seed, cfg)
    active = jnp.asarray(x != 0)
    history = eie.history_size(cfg.fifo_depth)
    totals = []
    for num_pes in config.pe_counts:
        counts = jnp.asarray(eie.column_counts(codes, num_pes, cfg.index_bits))
        cycles, _ = eie.cycles_from_counts(counts, active, cfg.fifo_depth, history=history)
        totals.append(int(jnp.max(cycles)))
    base = eie.cycles_from_counts(
        jnp.asarray(eie.column_counts(codes, 1, cfg.index_bits)),
        active,
        cfg.fifo_depth,
        history=history,
    )[0]
    return [int(jnp.max(base)) / t for t in totals]


def to_markdown(rows):
    header = (
        "| layer | cycles | µs | paper actual µs | paper theor. µs | ours/paper | load eff. "
        "| padding | encode s | cycles-only ms | outputs+cycles ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['layer']} | {r['cycles']} | {r['time_us']:.1f} | {r['paper_actual_us']} "
        f"| {r['paper_theoretical_us']} | {r['ratio_vs_paper']:.2f} | {r['load_efficiency']:.2f} "
        f"| {100 * r['padding_share']:.1f} % | {r['encode_s']:.2f} "
        f"| {1e3 * r['cycles_only_s']:.1f} | {1e3 * r['outputs_and_cycles_s']:.1f} |\n"
        for r in rows
    )
    return header + body


def run(config, workdir):
    cfg = eie.EIEConfig.from_dict(config.eie)
    specs = [benchmarks.get_spec(name) for name in config.layers]
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for spec in specs:
        rows.append(layer_row(spec, config, cfg))
        logging.info("%s: %d cycles, %.1f us", spec.name, rows[-1]["cycles"], rows[-1]["time_us"])
    ratios = [r["ratio_vs_paper"] for r in rows]
    summary = dict(
        geomean_ratio_vs_paper=float(np.exp(np.mean(np.log(ratios)))),
        all_layers_outputs_and_cycles_s=sum(r["outputs_and_cycles_s"] for r in rows),
        batch=batch_timing(config, cfg),
    )
    logging.info("design-space sweeps")
    fifo = {spec.name: fifo_sweep(spec, config, cfg) for spec in specs}
    pes = {spec.name: pe_sweep(spec, config, cfg) for spec in specs}
    plotting.line_plot(
        os.path.join(workdir, "load_efficiency_vs_fifo_depth.png"),
        config.fifo_depths,
        fifo,
        xlabel="FIFO depth",
        ylabel="load efficiency",
        title=f"Load efficiency vs FIFO depth ({cfg.num_pes} PEs; EIE Fig. 8)",
        logx=True,
    )
    plotting.line_plot(
        os.path.join(workdir, "speedup_vs_pe_count.png"),
        config.pe_counts,
        pes,
        xlabel="PEs",
        ylabel="speedup over 1 PE",
        title=f"Speedup vs PE count (FIFO {cfg.fifo_depth}; EIE Fig. 11)",
        logx=True,
        logy=True,
    )
    results = dict(
        config=config.to_dict(),
        machine=dict(
            platform=platform.platform(),
            cpus=os.cpu_count(),
            device=str(jax.devices()[0]),
            jax=jax.__version__,
        ),
        layers=rows,
        summary=summary,
        load_efficiency_vs_fifo_depth=dict(fifo_depths=list(config.fifo_depths), **fifo),
        speedup_vs_pe_count=dict(pe_counts=list(config.pe_counts), **pes),
    )
    with open(os.path.join(workdir, "bench_eie.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = to_markdown(rows)
    summary_md = (
        f"\ngeomean ours/paper: {summary['geomean_ratio_vs_paper']:.3f}; all layers, outputs + "
        f"cycles: {summary['all_layers_outputs_and_cycles_s']:.3f} s; batch of "
        f"{summary['batch']['batch_size']} on {summary['batch']['layer']}: "
        f"{summary['batch']['seconds']:.3f} s ({results['machine']['device']}, "
        f"{results['machine']['cpus']} CPUs)\n"
    )
    with open(os.path.join(workdir, "bench_eie.md"), "w") as f:
        f.write(table + summary_md)
    print(table + summary_md)
    return results


def main(argv):
    del argv
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
