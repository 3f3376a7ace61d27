"""Slow, obviously correct NumPy versions of the W4A16 study's quantisers (loops, float32)."""

import numpy as np


def assign(w, centroids):
    """Nearest centroid per weight of each row; ties to the lower index."""
    m, k = w.shape
    codes = np.zeros((m, k), np.int64)
    for r in range(m):
        for j in range(k):
            best, best_d = 0, np.inf
            for c in range(centroids.shape[1]):
                d = abs(np.float32(w[r, j]) - np.float32(centroids[r, c]))
                if d < best_d:
                    best, best_d = c, d
            codes[r, j] = best
    return codes


def row_kmeans(w, bits, iters):
    """Per-row Lloyd k-means, linear init over [min, max], empty clusters stay put."""
    w = np.asarray(w, np.float32)
    m, _ = w.shape
    k = 1 << bits
    out_c = np.zeros((m, k), np.float32)
    for r in range(m):
        lo, hi = w[r].min(), w[r].max()
        c = (lo + (hi - lo) * np.linspace(0.0, 1.0, k)).astype(np.float32)
        for _ in range(iters):
            codes = assign(w[r : r + 1], c[None])[0]
            for i in range(k):
                members = w[r][codes == i]
                if members.size:
                    c[i] = members.astype(np.float64).mean()
        out_c[r] = c
    codes = assign(w, out_c)
    return np.take_along_axis(out_c, codes, axis=1), codes


def rtn(w, bits, group, symmetric):
    """(w_hat, levels, scales, zeros) of round-to-nearest in groups of `group` inputs."""
    w = np.asarray(w, np.float32)
    m, k = w.shape
    w_hat = np.zeros_like(w)
    levels = np.zeros((m, k), np.int64)
    scales = np.zeros((m, k // group), np.float32)
    zeros = np.zeros((m, k // group), np.int64)
    for r in range(m):
        for g in range(k // group):
            cols = slice(g * group, (g + 1) * group)
            x = w[r, cols]
            if symmetric:
                q_max = 2 ** (bits - 1) - 1
                amax = np.abs(x).max()
                s = np.float32(amax / np.float32(q_max)) if amax > 0 else np.float32(1.0)
                q = np.clip(np.round(x / s), -q_max, q_max)
                z = 0
            else:
                top = np.float32(2**bits - 1)
                lo, hi = min(x.min(), np.float32(0)), max(x.max(), np.float32(0))
                s = np.float32((hi - lo) / top) if hi > lo else np.float32(1.0)
                z = int(np.clip(np.round(-lo / s), 0, top))
                q = np.clip(np.round(x / s) + z, 0, top)
            levels[r, cols] = q
            w_hat[r, cols] = (q - z) * s
            scales[r, g], zeros[r, g] = s, z
    return w_hat, levels, scales, zeros
