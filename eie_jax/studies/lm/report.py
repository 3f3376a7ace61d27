"""The W4A16 study's table (results.md) and Pareto figures from results.json: pareto.png
(bits per weight in Deep Compression's format) and pareto_eie.png (EIE's format where EIE
runs the method), each method family a colour, and every family read off at BUDGETS.

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


def dense_source(dense: dict) -> str:
    """Where the dense model came from: a published checkpoint and its sha256, or training."""
    if "sha256" in dense:
        return f"published checkpoint {dense['checkpoint']} (sha256 {dense['sha256']})"
    return "trained in the workdir"


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
        f"Dense: {dense_source(dense)}, {dense['steps']} steps in "
        f"{dense['seconds'] / 60:.1f} min; validation {dense['validation_nats']:.4f}, test "
        f"{dense['test_nats']:.4f} nats/char.",
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
    draws = max((r.get("draws", 1) for r in results["rows"]), default=1)
    if draws > 1:
        lines += [
            "",
            f"Calibrated methods (GPTQ, AWQ, SqueezeLLM, pruning + k-means): the mean of "
            f"{draws} draws of calibration windows; their intervals resample the draws too.",
        ]
    lines += [
        "",
        "Read off at bit budgets: each family's best test nats/char (Δ vs dense) among its "
        "rows within the budget; Deep Compression's format, then EIE's (pointers and padding "
        "included) for the methods EIE runs.",
        "",
        *read_off_markdown(results),
    ]
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


# Bit budgets every method is read off at: 3- and 4-bit codes with a 16-bit scale per
# group of 128 weights (g128's cost).
BUDGETS = (3.125, 4.125)
# The two ways of counting a row's bits: Deep Compression's (relative indices, one table
# per layer) and EIE's (its per-PE format with pointers) where EIE runs the method.
FORMATS = dict(
    dc="bits per FC weight (Deep Compression's format)",
    eie="bits per FC weight (EIE's format where EIE runs it, else the method's own)",
)


def family(row) -> str:
    """The curve a row belongs to: its method, the pruning rule of a composed one, and
    whether it was fine-tuned."""
    name = row.get("method", row["name"])
    if name == "pruned_kmeans":
        name = f"{row['rule']} + k-means"
    return name + (" ft" if row.get("finetuned") else "")


def row_bits(row, fmt: str) -> float:
    """The row's bits per weight in the format: Deep Compression's ("dc"), or EIE's
    ("eie": for a method EIE does not run, the method's own)."""
    if fmt == "eie" and row.get("eie_bits_per_weight") is not None:
        return row["eie_bits_per_weight"]
    return row["bits_per_weight"]


def _quantized(results):
    return [r for r in results["rows"] if r["bits"] < 32]


def read_off(results, fmt: str = "dc", budgets=BUDGETS) -> list[dict]:
    """Each family's best row within each bit budget: [{family, budget: (name, nats) or
    None}], families in first-row order; in EIE's format only the methods EIE runs."""
    out = {}
    for r in _quantized(results):
        entry = out.setdefault(family(r), {b: None for b in budgets})
        if fmt == "eie" and not r.get("runs_on_eie"):
            continue
        for b in budgets:
            best = entry[b]
            if row_bits(r, fmt) <= b and (best is None or r["test_nats"] < best[1]):
                entry[b] = (r["name"], r["test_nats"])
    return [dict(family=f, **{str(b): v for b, v in e.items()}) for f, e in out.items()]


def read_off_markdown(results, budgets=BUDGETS) -> list[str]:
    """The read-off table: each family's best test nats/char within each budget, in both
    formats (- where none of its rows fits)."""
    dense = results["dense"]["test_nats"]
    cols = [f"≤ {b} b/w ({fmt})" for fmt in FORMATS for b in budgets]
    lines = ["| family | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    tables = {fmt: {e["family"]: e for e in read_off(results, fmt, budgets)} for fmt in FORMATS}
    for name in tables["dc"]:
        cells = []
        for fmt in FORMATS:
            for b in budgets:
                best = tables[fmt][name][str(b)]
                cells.append("-" if best is None else f"{best[1]:.4f} ({best[1] - dense:+.4f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot(results, path, fmt: str = "dc") -> str:
    """Test nats/char against bits per weight in the format `fmt`, every quantized row a
    point coloured by family, the Pareto front labelled, the budgets dotted."""
    rows = _quantized(results)
    points = [(row_bits(r, fmt), -r["test_nats"]) for r in rows]
    front = pareto_front(points)
    return plotting.pareto_plot(
        path,
        [(x, -y) for x, y in points],
        [r["name"] for r in rows],
        front,
        xlabel=FORMATS[fmt],
        ylabel="test nats/char (lower is better)",
        title=f"{results['model']}: loss vs bits per weight "
        f"(dense {results['dense']['test_nats']:.3f})",
        groups=[family(r) for r in rows],
        vlines=BUDGETS,
    )


def curve_lines(curves: dict) -> dict:
    """{label: (training characters in millions, nats/char)} for `plotting.lines_figure`:
    each model's validation and test curve (curves: model -> the dense record's curve)."""
    lines = {}
    for model, curve in curves.items():
        chars = [p["chars"] / 1e6 for p in curve]
        for split in ("validation", "test"):
            lines[f"{model} {split}"] = (chars, [p[split] for p in curve])
    return lines


def plot_curve(curves: dict, path: str) -> str:
    """The learning curves of one or more dense models (model -> curve)."""
    fig = plotting.lines_figure(
        curve_lines(curves),
        xlabel="training characters (millions)",
        ylabel="nats/char (config.data.eval_windows windows)",
        title="dense models: loss against training characters",
        legend_cols=1,
    )
    return plotting.save(fig, path)


def write(results, workdir) -> None:
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(to_markdown(results))
    plot(results, os.path.join(workdir, "pareto.png"))
    plot(results, os.path.join(workdir, "pareto_eie.png"), fmt="eie")
