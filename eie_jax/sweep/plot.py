"""Figures of a sweep, declared in its config as `config.plots` (a list of dicts).

Plot options (PLOT_OPTIONS; x, y and name are required):
  x, y         an overridden field ('eie.num_pes') or a metric ('total_cycles') of each point
  series       an overridden field whose values split the points into lines (optional)
  where        {field: value}: only the points with these values (a field a point does not
               override has the sweep config's value)
  name         the PNG file written in the workdir ('fig8.png')
  title, xlabel, ylabel, legend_title
               texts; xlabel/ylabel default to x/y, legend_title to the series field
  logx, logy   log axes (x in base 2, y in base 10)
  transform    'speedup': y(ref_x) / y per series; 'relative': y / y(ref_x)
  ref_x        the x of the reference point of a transform (default: the smallest x)

`python -m experiments.plot --workdir=DIR [--config=FILE]` redraws them from the results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from eie_jax.sweep.store import load_results, load_sweep_meta
from eie_jax.utils import plotting, workdir
from eie_jax.utils.cli import UserError

PLOT_OPTIONS = {
    "x": "an overridden field or a metric, on the x axis (required)",
    "y": "an overridden field or a metric, on the y axis (required)",
    "name": "the PNG file written in the workdir (required)",
    "series": "an overridden field whose values split the points into lines",
    "where": "{field: value}: draw only the points with these values of fields",
    "title": "the figure's title",
    "xlabel": "the x axis label (default: x)",
    "ylabel": "the y axis label (default: y, or what the transform computes)",
    "legend_title": "the legend's title (default: the series field)",
    "logx": "log x axis, base 2",
    "logy": "log y axis, base 10",
    "transform": "'speedup' (y(ref_x) / y) or 'relative' (y / y(ref_x)), per series",
    "ref_x": "the x of a transform's reference point (default: the smallest x)",
}
TRANSFORMS = (None, "speedup", "relative")


def plot_sweep(workdir: str, plots: Sequence[Mapping] | None = None) -> list[str]:
    """Draws each figure of `plots` (default: the recorded config.plots) as DIR/<name>.

    Returns the paths written.
    """
    meta = load_sweep_meta(workdir)
    plots = meta["config"].get("plots", []) if plots is None else plots
    records = load_results(workdir)
    paths = []
    for spec in plots:
        if spec.get("where") and not _selected(records, spec, meta["config"]):
            logging.warning(
                "plot %s: skipped: where=%s selects no point", spec["name"], spec["where"]
            )
            continue
        fig = figure(records, dict(spec), meta["config"])
        paths.append(plotting.save(fig, os.path.join(workdir, spec["name"])))
    return paths


def figure(records: Sequence[dict], spec: dict, base: Mapping | None = None):
    """The matplotlib Figure of one plot spec over the sweep's records.

    base: the sweep's config (as recorded), where `where` finds a field no point overrides.
    """
    check_plot(spec)
    lines: dict[Any, list[tuple[Any, float]]] = {}
    records = _selected(records, spec, base)
    if spec.get("where") and not records:
        raise UserError(f"plot where={spec.get('where')}: no point has these values")
    for record in records:
        series = _value(record, spec["series"]) if spec.get("series") else None
        lines.setdefault(series, []).append(
            (_value(record, spec["x"]), float(_value(record, spec["y"])))
        )
    drawn = {}
    for series, xy in lines.items():
        xy.sort(key=lambda p: p[0])
        xs, ys = [p[0] for p in xy], np.asarray([p[1] for p in xy])
        drawn[series] = (xs, _transform(spec, xs, ys))
    return plotting.lines_figure(
        drawn,
        xlabel=spec.get("xlabel") or spec["x"],
        ylabel=spec.get("ylabel") or _default_ylabel(spec),
        title=spec.get("title"),
        logx=2 if spec.get("logx") else None,
        logy=10 if spec.get("logy") else None,
        legend_title=spec.get("legend_title") or spec.get("series"),
    )


def check_plot(spec: Mapping):
    """UserError naming the option when a plot spec is malformed."""
    for key in spec:
        if key not in PLOT_OPTIONS:
            raise UserError(f"plot option {key!r}: unknown; allowed: {sorted(PLOT_OPTIONS)}")
    for key in ("x", "y", "name"):
        if not spec.get(key):
            raise UserError(f"plot {dict(spec)}: missing {key!r}")
    if not spec["name"].endswith(".png"):
        raise UserError(f"plot name={spec['name']!r}: must end with .png")
    if spec.get("transform") not in TRANSFORMS:
        raise UserError(f"plot transform={spec.get('transform')!r}: must be one of {TRANSFORMS}")


def _selected(records: Sequence[dict], spec: Mapping, base: Mapping | None) -> list[dict]:
    """The records whose fields have the values of spec['where'] (all without one)."""
    where = dict(spec.get("where") or {})
    return [r for r in records if all(_value(r, f, base) == v for f, v in where.items())]


def _value(record: dict, name: str, base: Mapping | None = None):
    if name in record["overrides"]:
        return record["overrides"][name]
    if name in record["metrics"]:
        return record["metrics"][name]
    if base is not None:
        try:
            return workdir.lookup(base, name)
        except UserError:
            pass  # named below, with what a point has
    raise UserError(
        f"plot field {name!r}: neither an overridden field {sorted(record['overrides'])} "
        f"nor a metric {sorted(record['metrics'])}"
    )


def _transform(spec: dict, xs: list, ys: np.ndarray) -> np.ndarray:
    if not spec.get("transform"):
        return ys
    ref_x = spec.get("ref_x", xs[0])
    if ref_x not in xs:
        raise UserError(f"plot ref_x={ref_x!r}: not among the x values {xs}")
    ref = ys[xs.index(ref_x)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return ref / ys if spec["transform"] == "speedup" else ys / ref


def _default_ylabel(spec: dict) -> str:
    if spec.get("transform") == "speedup":
        return f"speedup ({spec['y']} at {spec['x']}={spec.get('ref_x', 'min')} / {spec['y']})"
    if spec.get("transform") == "relative":
        return f"{spec['y']} relative to {spec['x']}={spec.get('ref_x', 'min')}"
    return spec["y"]
