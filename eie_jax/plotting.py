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
