"""Small matplotlib helpers shared by the benchmarks, sweeps and comparisons (PNG, no screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def line_plot(path, xs, series: dict, *, xlabel, ylabel, title, logx=False, logy=False):
    """One line per entry of `series` (name -> y values over xs), saved to `path`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, ys in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log", base=2)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_plot(path, points, labels, front, *, xlabel, ylabel, title):
    """Labelled points (x, y) and the step line through the indices `front`, saved to `path`."""
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    xs, ys = zip(*points, strict=True) if points else ((), ())
    ax.scatter(xs, ys, s=18)
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if front:
        fx, fy = zip(*(points[i] for i in front), strict=True)
        ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, label="Pareto front")
        ax.legend(fontsize=7)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
