"""Small matplotlib helpers shared by the benchmarks, sweeps and comparisons (PNG, no screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def lines_figure(
    lines: dict,
    *,
    xlabel,
    ylabel,
    title=None,
    logx: int | None = None,
    logy: int | None = None,
    legend_title: str | None = None,
    legend_cols: int = 2,
    figsize=(6.4, 4.4),
):
    """A figure with one line per entry of `lines` (label -> (xs, ys)); label None: no
    legend entry. logx/logy: the base of a log axis (None: linear). Returns the Figure."""
    fig, ax = plt.subplots(figsize=figsize)
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    if logx:
        ax.set_xscale("log", base=logx)
    if logy:
        ax.set_yscale("log", base=logy)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    if any(label is not None for label in lines):
        ax.legend(fontsize=7, ncol=legend_cols, title=legend_title, title_fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig, path: str) -> str:
    """Writes the figure as a PNG at `path` and frees it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def line_plot(path, xs, series: dict, *, xlabel, ylabel, title, logx=False, logy=False):
    """One line per entry of `series` (name -> y values over xs), saved to `path`; log axes
    in base 2."""
    fig = lines_figure(
        {name: (xs, ys) for name, ys in series.items()},
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        logx=2 if logx else None,
        logy=2 if logy else None,
        legend_cols=3,
        figsize=(6.4, 4.2),
    )
    return save(fig, path)


def pareto_plot(
    path, points, labels, front, *, xlabel, ylabel, title, where="post", target=(None, None),
    groups=None, vlines=(),
):  # fmt: skip
    """Labelled points (x, y) and the step line through the indices `front`, saved to `path`.
    where: the step's corner, 'post' for a front rising with x (cost vs accuracy), 'pre' for
    one falling with x (ratio vs accuracy); target (x, y): dashed lines where not None.
    groups: a group name per point: each group its own colour in the legend, and only the
    front's points labelled (for many points); vlines: dotted vertical lines at these x."""
    fig, ax = plt.subplots(figsize=(7.0, 4.6) if groups is None else (9.0, 5.6))
    if groups is None:
        xs, ys = zip(*points, strict=True) if points else ((), ())
        ax.scatter(xs, ys, s=18)
        shown = range(len(points))
    else:
        colours, markers = plt.get_cmap("tab20").colors, "os^vDP*Xph"
        for k, group in enumerate(dict.fromkeys(groups)):
            xs, ys = zip(
                *(p for p, g in zip(points, groups, strict=True) if g == group), strict=True
            )
            ax.scatter(xs, ys, s=14, label=group, color=colours[k % 20], marker=markers[k % 10])
        shown = front
    for i in shown:
        ax.annotate(labels[i], points[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
    for x in vlines:
        ax.axvline(x, color="gray", linestyle=":", linewidth=0.8)
    if front:
        fx, fy = zip(*(points[i] for i in front), strict=True)
        ax.step(fx, fy, where=where, color="tab:red", alpha=0.6, label="Pareto front")
    if front or groups is not None:
        ax.legend(fontsize=6 if groups is None else 5, ncol=1 if groups is None else 2)
    if target[0] is not None:
        ax.axvline(target[0], color="gray", linestyle="--", linewidth=0.8)
    if target[1] is not None:
        ax.axhline(target[1], color="gray", linestyle="--", linewidth=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower-or-equal x (cost: cycles, bits) and
    higher-or-equal y (accuracy; pass -loss for a loss), one of them strictly. Sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points)
            if j != i
        )  # fmt: skip
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])
