"""Slow, obviously correct NumPy weighted 1-D k-means (loops), the oracle of
eie_jax/studies/lm/methods/sensitivity.py: row by row, values and weights (R, N)."""

import numpy as np

from tests.oracle import quant_oracle


def _weights(weights):
    """A row whose weights sum to 0 is clustered with equal weights."""
    weights = np.asarray(weights, np.float64)
    return np.where(weights.sum(axis=1, keepdims=True) > 0, weights, 1.0)


def init(values, weights, k, how):
    """Starts (R, k): linear over [min, max], or the smallest value whose cumulative
    weight (ascending values, ties in input order) reaches (i + 1/2) / k of the total."""
    values = np.asarray(values, np.float32)
    weights = _weights(weights)
    fractions = ((np.arange(k) + 0.5) / k).astype(np.float32)
    start = np.zeros((len(values), k), np.float32)
    for r in range(len(values)):
        if how == "linear":
            lo, hi = values[r].min(), values[r].max()
            start[r] = lo + (hi - lo) * np.linspace(0.0, 1.0, k).astype(np.float32)
            continue
        order = np.argsort(values[r], kind="stable")
        total = np.float32(weights[r].sum())
        for i in range(k):
            target = total * fractions[i]  # float32, as the JAX version
            cumulative = 0.0
            for j in order:
                cumulative += weights[r, j]
                if cumulative >= target:
                    break
            start[r, i] = values[r, j]
    return start


def lloyd(values, weights, start, iters):
    """(centroids (R, k), codes (R, N)): nearest centroid (ties to the lower index), every
    centroid with positive member weight to its members' weighted mean (float64 sums);
    at most `iters` iterations, stopping once no centroid moves."""
    values = np.asarray(values, np.float32)
    weights = _weights(weights)
    centroids = np.array(start, np.float32)
    for r in range(len(values)):
        for _ in range(iters):
            codes = quant_oracle.assign(values[r : r + 1], centroids[r : r + 1])[0]
            new = centroids[r].copy()
            for c in range(centroids.shape[1]):
                members = codes == c
                mass = weights[r][members].sum()
                if mass > 0:
                    new[c] = (weights[r][members] * values[r][members]).sum() / mass
            if np.array_equal(new, centroids[r]):
                break
            centroids[r] = new
    return centroids, quant_oracle.assign(values, centroids)


def kmeans(values, weights, k, iters, how="linear"):
    return lloyd(values, weights, init(values, weights, k, how), iters)
