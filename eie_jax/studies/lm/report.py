"""The W4A16 study's table (results.md) and Pareto figure (pareto.png) from results.json.

When the dense model and a row carry per-window test losses (`test_windows`,
bootstrap.py), the row's difference from dense is written "Δ [lo, hi]", the paired
bootstrap interval over the same windows (results["bootstrap"]: samples, seed, level;
else bootstrap's defaults), and the table is followed by the methods of each bit width
ranked pairwise, a pair only where the interval of its difference excludes 0
(`ranking`). Without windows the output is the table alone, as before.
"""

from __future__ import annotations

import os

from eie_jax.studies.lm import bootstrap
from eie_jax.utils import plotting
from eie_jax.utils.plotting import pareto_front

HEADER = (
    "| method | bits | sparsity | fine-tuned | test nats/char | Δ vs dense | bits/weight "
    "| bits/weight (EIE format) | model KB | runs on EIE |"
)


def interval_text(delta: float, lo: float, hi: float) -> str:
    """'Δ [lo, hi]', signed, in nats/char to 4 decimals."""
    return f"{delta:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def ranking(a: str, b: str, interval) -> str:
    """One line on methods a and b from the interval (delta, lo, hi) of b - a in nats/char
    (lower is better): one is better only where the interval excludes 0."""
    delta, lo, hi = interval
    difference = f"{b} - {a} = {interval_text(delta, lo, hi)} nats/char"
    if hi < 0:
        return f"{b} better than {a}: {difference}"
    if lo > 0:
        return f"{a} better than {b}: {difference}"
    return f"{a} and {b} not ranked: {difference} includes 0"


def _settings(results) -> dict:
    given = results.get("bootstrap") or {}
    return dict(
        samples=given.get("samples", bootstrap.SAMPLES),
        seed=given.get("seed", bootstrap.SEED),
        level=given.get("level", bootstrap.LEVEL),
    )


def delta_interval(results, row):
    """(delta, lo, hi) of the row's test nats/char minus dense's, or None without windows."""
    dense = results["dense"].get("test_windows")
    if dense is None or row.get("test_windows") is None:
        return None
    return bootstrap.paired_interval(dense, row["test_windows"], **_settings(results))


def rankings(results) -> list[str]:
    """At each bit width below 32, its rows with windows in order of test nats/char, each
    against the next (`ranking`)."""
    lines = []
    rows = [r for r in results["rows"] if r["bits"] < 32 and r.get("test_windows")]
    for bits in sorted({r["bits"] for r in rows}):
        ordered = sorted((r for r in rows if r["bits"] == bits), key=lambda r: r["test_nats"])
        for a, b in zip(ordered, ordered[1:], strict=False):
            interval = bootstrap.paired_interval(
                a["test_windows"], b["test_windows"], **_settings(results)
            )
            lines.append(f"- {bits} bits: {ranking(a['name'], b['name'], interval)}")
    return lines


def to_markdown(results) -> str:
    dense = results["dense"]
    intervals = [delta_interval(results, r) for r in results["rows"]]
    header = HEADER
    if any(i is not None for i in intervals):
        level = _settings(results)["level"]
        header = HEADER.replace("Δ vs dense", f"Δ vs dense [{level:.0%} interval]")
    lines = [
        f"# {results['model']}: compression methods from one dense model",
        "",
        f"Dense: {dense['steps']} steps in {dense['seconds'] / 60:.1f} min; validation "
        f"{dense['validation_nats']:.4f}, test {dense['test_nats']:.4f} nats/char.",
        "",
        "Bits/weight: everything stored for the FC matrices (codes, codebooks, fp16 scales, "
        "zeros, relative indices) over their dense weight count. Model KB adds the embedding, "
        "positions, LayerNorms and biases at 16 bits.",
        "",
        header,
        "|---" * 10 + "|",
        f"| dense fp32 | 32 | 0.00 | - | {dense['test_nats']:.4f} | 0.0000 | 32.00 | - "
        f"| {dense.get('model_kb', float('nan')):.0f} | no |",
    ]
    for r, interval in zip(results["rows"], intervals, strict=True):
        eie = r["eie_bits_per_weight"]
        delta = f"{r['delta_nats']:+.4f}" if interval is None else interval_text(*interval)
        lines.append(
            f"| {r['name']} | {r['bits']} | {r['sparsity']:.2f} | "
            f"{'yes' if r['finetuned'] else 'no'} | {r['test_nats']:.4f} | "
            f"{delta} | {r['bits_per_weight']:.3f} | "
            f"{'-' if eie is None else f'{eie:.3f}'} | {r['model_kb']:.0f} | "
            f"{'yes' if r['runs_on_eie'] else 'no'} |"
        )
    ranked = rankings(results)
    if ranked:
        settings = _settings(results)
        lines += [
            "",
            f"Ranked at each bit width, each method against the next: paired bootstrap "
            f"({settings['samples']} resamples of the test windows, {settings['level']:.0%} "
            "interval); a pair is ranked only where the interval excludes 0.",
            "",
            *ranked,
        ]
    return "\n".join(lines) + "\n"


def plot(results, path) -> str:
    rows = [r for r in results["rows"] if r["bits"] < 32]
    points = [(r["bits_per_weight"], -r["test_nats"]) for r in rows]
    front = pareto_front(points)
    return plotting.pareto_plot(
        path,
        [(x, -y) for x, y in points],
        [r["name"] for r in rows],
        front,
        xlabel="bits per FC weight (everything stored)",
        ylabel="test nats/char (lower is better)",
        title=f"{results['model']}: loss vs bits per weight "
        f"(dense {results['dense']['test_nats']:.3f})",
    )


def write(results, workdir) -> None:
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(to_markdown(results))
    plot(results, os.path.join(workdir, "pareto.png"))
