"""Benchmarks the EIE model on the nine Table III layers and draws the design-space figures.

    python -m experiments.bench_eie --config=configs/eie_benchmarks.py --workdir=runs/bench_eie

Prints (and writes to WORKDIR/bench_eie.{json,md}) one row per layer: cycles, time at the
clock, the paper's actual and theoretical times (ISCA 2016 Table IV), our/paper ratio,
load efficiency, padding share, and wall times (medians after compilation) for encoding,
cycles only, and outputs + cycles. Figures: load efficiency vs FIFO depth (paper Fig. 8)
and speedup vs PE count (Fig. 11), computed by the sweep runner's code path (the same
numbers as configs/sweeps/fig8_fifo_depth.py and fig11_pe_count.py); its cycles at the
chip's design point are checked against the simulate() rows.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from eie_jax import eie, sweep
from eie_jax.api.figures import LayerFigures
from eie_jax.eie import benchmarks
from eie_jax.utils import cli as errors
from eie_jax.utils import plotting, schema
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.timer import interleaved_medians, machine, median_time

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and figures go.")
flags.mark_flags_as_required(["config", "workdir"])


def layer_row(spec, config, cfg):
    codes, codebook, x = benchmarks.synthetic_layer(spec, config.seed, cfg)
    encode_s = median_time(lambda: eie.encode(codes, codebook, cfg).slice_codes, config.repeats)
    layer = eie.encode(codes, codebook, cfg)
    rtl = cfg.replace(timing="rtl")
    fig = LayerFigures.for_layer(spec.name, layer, cfg)
    xs = jnp.asarray(x)[None]
    fig.add_simulations(
        layer, xs, eie.simulate_batch(layer, xs, cfg), cfg, rtl=eie.simulate_batch(layer, xs, rtl)
    )
    times = interleaved_medians(
        dict(
            paper=lambda: eie.simulate_cycles(layer, x, cfg),
            rtl=lambda: eie.simulate_cycles(layer, x, rtl),
            outputs=lambda: eie.simulate(layer, x, cfg),
        ),
        config.repeats,
    )
    return dict(
        layer=spec.name,
        shape=list(spec.shape),
        cycles=fig.cycles,
        time_us=fig.time_us,
        paper_actual_us=spec.paper_actual_us,
        paper_theoretical_us=spec.paper_theoretical_us,
        ratio_vs_paper=fig.time_us / spec.paper_actual_us,
        load_efficiency=fig.load_efficiency,
        padding_share=fig.padding / max(fig.entries, 1),
        encode_s=encode_s,
        rtl_cycles=fig.rtl_cycles,
        cycles_only_s=times["paper"],
        rtl_cycles_only_s=times["rtl"],
        outputs_and_cycles_s=times["outputs"],
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


def design_sweep(config, field, values):
    """{layer: {value: metrics}}, through the sweep runner's code path
    (eie_jax.sweep.evaluate_eie_points), the chip's other fields from config.eie."""
    base = sweep.eie_base_config(**config.eie)
    base.seed = config.seed
    layers = list(config.layers)
    values = sorted(set(values))
    points = sweep.product(sweep.sweep("layer", layers), sweep.sweep(field, values))
    metrics = iter(sweep.evaluate_eie_points(base, points))
    return {name: {v: next(metrics) for v in values} for name in layers}


def check_design_point(rows, config, cfg):
    """The sweep path's cycles at the chip's own design point equal simulate()'s."""
    at = design_sweep(config, "eie.fifo_depth", [cfg.fifo_depth])
    for row in rows:
        swept = at[row["layer"]][cfg.fifo_depth]["total_cycles"]
        if swept != row["cycles"]:
            raise AssertionError(f"{row['layer']}: simulate {row['cycles']}, sweep {swept} cycles")
        row["sweep_cycles"] = swept


def to_markdown(rows):
    header = (
        "| layer | cycles | rtl cycles | µs | paper actual µs | paper theor. µs | ours/paper "
        "| load eff. | padding | encode s | cycles-only ms | rtl cycles-only ms "
        "| outputs+cycles ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['layer']} | {r['cycles']} | {r['rtl_cycles']} | {r['time_us']:.1f} "
        f"| {r['paper_actual_us']} "
        f"| {r['paper_theoretical_us']} | {r['ratio_vs_paper']:.2f} | {r['load_efficiency']:.2f} "
        f"| {100 * r['padding_share']:.1f} % | {r['encode_s']:.2f} "
        f"| {1e3 * r['cycles_only_s']:.1f} | {1e3 * r['rtl_cycles_only_s']:.1f} "
        f"| {1e3 * r['outputs_and_cycles_s']:.1f} |\n"
        for r in rows
    )
    return header + body


def run(config, workdir):
    schema.check(config, benchmarks.BENCH_EIE)
    with workdirs.session(workdir, "bench_eie", config):
        return _run(config, workdir)


def _run(config, workdir):
    cfg = eie.EIEConfig(**config.eie)
    specs = [benchmarks.get_spec(name) for name in config.layers]
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
    check_design_point(rows, config, cfg)
    by_depth = design_sweep(config, "eie.fifo_depth", config.fifo_depths)
    by_pes = design_sweep(config, "eie.num_pes", [1, *config.pe_counts])
    fifo = {n: [ms[d]["load_efficiency"] for d in config.fifo_depths] for n, ms in by_depth.items()}
    cycles = {n: [ms[p]["total_cycles"] for p in config.pe_counts] for n, ms in by_pes.items()}
    pes = {n: [by_pes[n][1]["total_cycles"] / c for c in cs] for n, cs in cycles.items()}
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
        machine=machine(),
        layers=rows,
        summary=summary,
        load_efficiency_vs_fifo_depth=dict(fifo_depths=list(config.fifo_depths), **fifo),
        speedup_vs_pe_count=dict(pe_counts=list(config.pe_counts), **pes),
        cycles_vs_fifo_depth={
            n: [ms[d]["total_cycles"] for d in config.fifo_depths] for n, ms in by_depth.items()
        },
        cycles_vs_pe_count=cycles,
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
    errors.run(main, validate=lambda: schema.check(_CONFIG.value, benchmarks.BENCH_EIE))
