"""Paired bootstrap intervals of loss differences over the same evaluation windows.

Every method is scored on the same windows of the test text (`text.eval_windows`:
config.data.eval_windows non-overlapping windows at evenly spaced offsets).
`training.window_losses` gives each window's mean cross entropy in nats/char; their mean
is `training.evaluate`'s number.

The difference of method B from method A is the mean over windows of b_i - a_i.
`paired_interval` resamples the window indices with replacement, the same indices for
both (`samples` resamples of n indices from numpy's default_rng(seed)), and returns the
observed mean difference with the central `level` percentile interval of the resampled
mean differences (Efron's percentile bootstrap; np.quantile's linear interpolation).
Two methods are ranked only where the interval of their difference excludes 0
(`report.ranking`).

A calibrated method run on several calibration draws (config.quantize.calibration_draws)
stores one row of windows per draw, and its interval resamples the draws as well as the
windows (`paired_interval`): the interval then holds the spread between calibration sets.

Windows are stored when config.bootstrap.samples > 0 (`enabled`; a config without a
bootstrap section stores none): each row of results.json gets `test_windows`.
"""

from __future__ import annotations

import numpy as np

from eie_jax.studies.lm import training as lm

SAMPLES, SEED, LEVEL = 10000, 0, 0.95
_CHUNK = 1 << 22  # resampled indices drawn at a time (32 MiB of int64)


def enabled(config) -> bool:
    """Whether runs store per-window test losses: config.bootstrap.samples > 0."""
    section = config.get("bootstrap", None)
    return section is not None and section.get("samples", 0) > 0


def result_windows(model, corpus, config) -> list[float] | None:
    """The model's per-window test losses as a list (for results.json), or None when the
    config asks for no intervals (`enabled`)."""
    if not enabled(config):
        return None
    d = config.data
    return lm.window_losses(model, corpus.test, d.context, d.eval_windows).tolist()


def paired_interval(a_windows, b_windows, samples=SAMPLES, seed=SEED, level=LEVEL):
    """(mean difference, lo, hi) of b - a over paired windows (see the module).

    Each of a, b is (n,) per-window losses, or (d, n): one row per calibration draw of a
    calibrated method. A method with draws is resampled over them too: every resample
    takes the n window indices (shared by a and b), then for each side with draws d draw
    indices with replacement (shared too when both sides have the same number of draws:
    draw k of every method uses the same calibration windows), and averages that side
    over the chosen draws and windows; the observed difference is b's mean over all its
    draws and windows minus a's."""
    a, b = np.asarray(a_windows, np.float64), np.asarray(b_windows, np.float64)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[-1] != b.shape[-1] or not a.size:
        raise ValueError(
            f"windows: shapes {a.shape} and {b.shape}; want equal (n,), or (draws, n) with "
            "the same n >= 1"
        )
    if not 0 < level < 1 or int(samples) < 1:
        raise ValueError(f"level={level!r}, samples={samples!r}: want 0 < level < 1, samples >= 1")
    n = a.shape[-1]
    rng = np.random.default_rng(seed)
    means = np.empty(int(samples))
    if a.ndim == b.ndim == 1:  # one draw each: the plain paired bootstrap
        difference = b - a
        chunk = max(1, _CHUNK // n)
        for start in range(0, len(means), chunk):
            count = min(chunk, len(means) - start)
            means[start : start + count] = difference[rng.integers(0, n, (count, n))].mean(axis=1)
        observed = difference.mean()
    else:
        a, b = a.reshape(-1, n), b.reshape(-1, n)
        chunk = max(1, _CHUNK // (n * max(len(a), len(b))))
        for start in range(0, len(means), chunk):
            count = min(chunk, len(means) - start)
            idx = rng.integers(0, n, (count, n))
            if len(a) == len(b) > 1:  # draw k of each side: the same calibration windows
                draws = rng.integers(0, len(a), (count, len(a)))
                side_a, side_b = _resampled(a, idx, draws), _resampled(b, idx, draws)
            else:
                side_a, side_b = _resampled(a, idx, rng), _resampled(b, idx, rng)
            means[start : start + count] = side_b - side_a
        observed = b.mean() - a.mean()
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(observed), float(lo), float(hi)


def _resampled(x, idx, draws):
    """(count,) means of x (d, n) over the windows idx (count, n) of each resample, and,
    when d > 1, over d draws per resample: `draws` (count, d) indices, or a Generator to
    choose them with replacement."""
    if len(x) == 1:
        return x[0][idx].mean(axis=1)
    if isinstance(draws, np.random.Generator):
        draws = draws.integers(0, len(x), (len(idx), len(x)))
    return x[draws[:, :, None], idx[:, None, :]].mean(axis=(1, 2))
