"""Tuning tables: many compression runs (report.json of experiments/compress.py) summarised
per variant over seeds, with their Pareto front of compression ratio against accuracy.

A variant is the run directory's name without a trailing `_seed<N>`; its numbers are the mean
and population standard deviation over its seeds. `config_overrides` names what a run's
config changed against a reference config (the `--config.` overrides that reproduce it).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from eie_jax.utils import plotting, workdir

# report.json field -> column of the tuning table (accuracies in %).
FIELDS = {
    "dense_accuracy": "dense",
    "compressed_accuracy": "compressed",
    "eie_accuracy": "eie",
    "compression_ratio": "ratio",
    "compression_ratio_eie": "ratio_eie",
}
_SEED = re.compile(r"_seed\d+$")


def config_overrides(config: dict, reference: dict, ignore=("seed",)) -> dict:
    """The dotted fields whose value in `config` differs from `reference` (or is new)."""
    changed = workdir.changed_fields(reference, config)
    return dict(
        sorted((k, v) for k, _, v in changed if k not in ignore and v is not workdir.ABSENT)
    )


def load_run(workdir: str) -> dict:
    """One run: its variant, seed, headline numbers, wall seconds and config."""
    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    run = {col: report[key] for key, col in FIELDS.items()}
    for col in ("dense", "compressed", "eie"):
        run[col] *= 100.0
    run.update(
        variant=_SEED.sub("", os.path.basename(os.path.normpath(workdir))),
        seed=report["config"]["seed"],
        seconds=report["seconds"]["total"],
        config=report["config"],
    )
    return run


def summarize(runs: list[dict], reference: dict | None = None) -> list[dict]:
    """Per variant (in first-seen order): per-seed lists, mean and std of every column, the
    accuracy change against dense (compressed - dense, per seed then averaged) and, with a
    reference config, the overrides of the variant's first run."""
    variants: dict[str, list[dict]] = {}
    for run in runs:
        variants.setdefault(run["variant"], []).append(run)
    rows = []
    for name, group in variants.items():
        group = sorted(group, key=lambda r: r["seed"])
        row = dict(variant=name, seeds=[r["seed"] for r in group])
        for col in (*FIELDS.values(), "seconds"):
            values = np.array([r[col] for r in group], float)
            row[col] = values.tolist()
            row[f"{col}_mean"], row[f"{col}_std"] = float(values.mean()), float(values.std())
        delta = np.array([r["compressed"] - r["dense"] for r in group])
        row["delta"], row["delta_mean"], row["delta_std"] = (
            delta.tolist(),
            float(delta.mean()),
            float(delta.std()),
        )
        if reference is not None:
            row["overrides"] = config_overrides(group[0]["config"], reference)
        rows.append(row)
    return rows


def pareto_figure(rows: list[dict], path: str, title: str, target=(None, None)) -> str:
    """Mean P+Q+H ratio (x) against mean accuracy change vs dense (y), one labelled point per
    variant, with the front of the variants no other beats on both; target (ratio, change):
    dashed lines."""
    points = [(r["ratio_mean"], r["delta_mean"]) for r in rows]
    labels = [f"{r['variant']} (n={len(r['seeds'])})" for r in rows]
    front = plotting.pareto_front([(-x, y) for x, y in points])
    return plotting.pareto_plot(
        path,
        points,
        labels,
        sorted(front, key=lambda i: points[i]),
        xlabel="compression ratio P+Q+H (x)",
        ylabel="compressed - dense test accuracy (points)",
        title=title,
        where="pre",
        target=target,
    )


def to_markdown(rows: list[dict]) -> str:
    """The tuning table: one line per variant, per-seed values and means."""

    def cell(row, col, fmt):
        values = " / ".join(format(v, fmt) for v in row[col])
        if len(row[col]) == 1:
            return values
        std = format(row[col + "_std"], fmt.lstrip("+"))
        return f"{values} (mean {row[col + '_mean']:{fmt}} ± {std})"

    lines = [
        "| variant | overrides | seeds | dense % | compressed % | Δ points | EIE % "
        "| P+Q+H | EIE format | seconds |",
        "|---" * 10 + "|",
    ]
    for r in rows:
        overrides = " ".join(f"{k}={v}" for k, v in r.get("overrides", {}).items()) or "-"
        lines.append(
            f"| {r['variant']} | {overrides} | {', '.join(map(str, r['seeds']))} "
            f"| {cell(r, 'dense', '.2f')} | {cell(r, 'compressed', '.2f')} "
            f"| {cell(r, 'delta', '+.2f')} | {cell(r, 'eie', '.2f')} "
            f"| {cell(r, 'ratio', '.1f')} | {cell(r, 'ratio_eie', '.2f')} "
            f"| {cell(r, 'seconds', '.0f')} |"
        )
    return "\n".join(lines)
