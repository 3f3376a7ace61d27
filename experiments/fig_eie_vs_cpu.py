"""EIE's Figs. 6 and 7 from our model: speedup and energy efficiency over the CPU (dense).

    python -m experiments.fig_eie_vs_cpu --config=configs/fig_eie_vs_cpu.py --workdir=runs/fig67

CPU/GPU/mGPU bars come from the paper's Table IV times and Table V powers; the EIE bars
from our model on synthetic Table III layers (paper and rtl timing; energy from Table II
events, and the paper's method: time x 0.59 W). Writes WORKDIR/fig67.{json,md} and
fig6_speedup_vs_cpu.png, fig7_energy_efficiency_vs_cpu.png.
"""

import json
import os

import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from eie_jax import eie
from eie_jax.api.figures import LayerFigures
from eie_jax.eie import baselines, benchmarks, memory
from eie_jax.utils import cli as errors
from eie_jax.utils import schema
from eie_jax.utils import workdir as workdirs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and figures go.")
flags.mark_flags_as_required(["config", "workdir"])


def bar_plot(path, labels, series, *, ylabel, title):
    """Grouped bars on a log axis: one group per label, one bar per series entry."""
    fig, ax = plt.subplots(figsize=(11, 4.6))
    width = 0.8 / len(series)
    xs = np.arange(len(labels))
    colors = plt.get_cmap("tab20").colors
    for i, (name, ys) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(xs + offset, ys, width, label=name, color=colors[i % len(colors)])
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_yscale("log")
    top = max(max(ys) for ys in series.values())
    ax.set_ylim(top=top * 1e3)  # room for the legend above the bars
    ax.set(ylabel=ylabel, title=title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def eie_layer(spec, cfg, seed: int = 0) -> dict:
    """One Table III layer (synthetic, benchmarks.synthetic_layer) on the EIE model.

    Returns cycles and µs for both timings, the event-model energy (rtl timing, on-chip),
    the memory plan under cfg (dram_gbps > 0 streams a layer that does not fit) and the
    streamed time, and the paper-method energy (time x Table V's 0.59 W); the figures of
    merit are `figures.LayerFigures`'.
    """
    codes, codebook, x = benchmarks.synthetic_layer(spec, seed, cfg)
    layer = eie.encode(codes, codebook, cfg)
    del codes
    fig = LayerFigures.for_layer(spec.name, layer, cfg)
    xs = jnp.asarray(x)[None]
    runs = {m: eie.simulate_batch(layer, xs, cfg.replace(timing=m)) for m in ("paper", "rtl")}
    # Energy under the rtl timing, weights on chip.
    fig.add_simulations(layer, xs, runs["paper"], cfg, rtl=runs["rtl"], energy_from="rtl")
    plan = memory.plan(layer, cfg, where=spec.name)
    rtl_us = fig.rtl_cycles / cfg.clock_mhz
    return dict(
        layer=spec.name,
        paper_cycles=fig.cycles,
        paper_us=fig.cycles / cfg.clock_mhz,
        rtl_cycles=fig.rtl_cycles,
        rtl_us=rtl_us,
        fits_sram=plan.fits,
        sram_need_bytes=plan.need,
        rtl_streamed_us=plan.time_us(rtl_us),
        dram_energy_uj=plan.dram_energy_uj,
        energy_uj=fig.total_energy_uj,
        energy_breakdown_uj=fig.energy_uj,
        power_w=fig.power_w,
        pj_per_useful_mac=fig.pj_per_useful_mac,
        gops=fig.gops,
        gops_per_watt=fig.gops_per_watt,
        paper_method_uj=rtl_us * baselines.POWER_W["EIE"],
    )


def with_geomean(values):
    values = [float(v) for v in values]
    return values + [baselines.geomean(values)]


def run(config, workdir):
    schema.check(config, benchmarks.FIG_EIE_VS_CPU)
    with workdirs.session(workdir, "fig_eie_vs_cpu", config):
        return _run(config, workdir)


def _run(config, workdir):
    cfg = eie.EIEConfig(**config.eie)
    order = list(baselines.LAYER_ORDER)
    specs = [benchmarks.get_spec(name) for name in order if name in config.layers]
    index = [order.index(spec.name) for spec in specs]
    rows = []
    for spec in specs:
        rows.append(eie_layer(spec, cfg, config.seed))
        logging.info("%s: %s", spec.name, rows[-1])
    speed, eff = baselines.baseline_bars()
    speed = {name: v[index] for name, v in speed.items()}
    eff = {name: v[index] for name, v in eff.items()}
    cpu_us = np.asarray(baselines.TABLE_IV_US[("CPU", "dense")])[index]
    cpu_uj = cpu_us * baselines.POWER_W["CPU"]
    paper_us = np.array([spec.paper_actual_us for spec in specs])
    for mode in ("paper", "rtl"):
        us = np.array([r[f"{mode}_us"] for r in rows])
        speed[f"EIE ({mode} timing)"] = cpu_us / us
        eff[f"EIE ({mode} timing) x 0.59 W"] = cpu_uj / (us * baselines.POWER_W["EIE"])
    eff["EIE (rtl timing, Table II events)"] = cpu_uj / np.array([r["energy_uj"] for r in rows])
    # The method check: the paper's own Table IV EIE times through the same arithmetic.
    speed["EIE (paper's Table IV times)"] = cpu_us / paper_us
    eff["EIE (paper's Table IV times) x 0.59 W"] = cpu_uj / (paper_us * baselines.POWER_W["EIE"])
    labels = [spec.name for spec in specs] + ["geomean"]
    fig6 = {name: with_geomean(v) for name, v in speed.items()}
    fig7 = {name: with_geomean(v) for name, v in eff.items()}
    paper6 = [baselines.PAPER_FIG6_EIE[i] for i in index]
    paper7 = [baselines.PAPER_FIG7_EIE[i] for i in index]
    fig6["EIE (paper's Fig. 6)"] = with_geomean(paper6)
    fig7["EIE (paper's Fig. 7)"] = with_geomean(paper7)
    bar_plot(
        os.path.join(workdir, "fig6_speedup_vs_cpu.png"),
        labels,
        fig6,
        ylabel="speedup over CPU dense",
        title=f"EIE Fig. 6: speedup over CPU dense ({cfg.num_pes} PEs, FIFO {cfg.fifo_depth})",
    )
    bar_plot(
        os.path.join(workdir, "fig7_energy_efficiency_vs_cpu.png"),
        labels,
        fig7,
        ylabel="energy efficiency over CPU dense",
        title="EIE Fig. 7: energy efficiency over CPU dense",
    )
    md = to_markdown(labels, fig6, "Fig. 6, speedup over CPU dense") + "\n"
    md += to_markdown(labels, fig7, "Fig. 7, energy efficiency over CPU dense") + "\n"
    md += layer_table(rows)
    with open(os.path.join(workdir, "fig67.md"), "w") as f:
        f.write(md)
    with open(os.path.join(workdir, "fig67.json"), "w") as f:
        json.dump(dict(config=config.to_dict(), layers=rows, fig6=fig6, fig7=fig7), f, indent=2)
    print(md)


def to_markdown(labels, series, title):
    head = f"{title}\n\n| | " + " | ".join(labels) + " |\n" + "|---" * (len(labels) + 1) + "|\n"
    return head + "".join(
        f"| {name} | " + " | ".join(f"{v:,.3g}" if v < 100 else f"{v:,.0f}" for v in vs) + " |\n"
        for name, vs in series.items()
    )


def layer_table(rows):
    head = (
        "| layer | paper-timing µs | rtl µs | fits SRAM | rtl µs, DRAM-streamed | energy µJ "
        "(Table II events) | time x 0.59 W µJ | W | pJ / useful MAC | GOP/s | GOP/s/W |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r['layer']} | {r['paper_us']:.1f} | {r['rtl_us']:.1f} | "
        f"{'yes' if r['fits_sram'] else 'no: ' + str(r['sram_need_bytes'])} | "
        f"{r['rtl_streamed_us']:.1f} | {r['energy_uj']:.2f} | {r['paper_method_uj']:.2f} | "
        f"{r['power_w']:.3f} | {r['pj_per_useful_mac']:.1f} | {r['gops']:.0f} | "
        f"{r['gops_per_watt']:.0f} |\n"
        for r in rows
    )


def main(argv):
    del argv
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: schema.check(_CONFIG.value, benchmarks.FIG_EIE_VS_CPU))
