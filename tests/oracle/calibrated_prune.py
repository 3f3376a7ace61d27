"""Slow, obviously correct NumPy versions of the calibrated pruning rules (float64, loops).

Wanda and SparseGPT as their papers write them, one column at a time (SparseGPT's update
of all later columns after each one, not its lazy batching per block), with the counts of
eie_jax.compression.prune.calibrated: a row keeps round((1 - sparsity) * K) weights (the
block's share of it: round((1 - s) * end) - round((1 - s) * start) for the columns
start..end of a SparseGPT block), N:M keeps n of every m consecutive inputs, ties go to the
earlier position, and weights outside `allowed` are never kept.
"""

import numpy as np


def _top(scores, count, allowed):
    """Bool mask of the `count` largest scores among the allowed ones (ties: earlier first)."""
    order = sorted((i for i in range(len(scores)) if allowed[i]), key=lambda i: (-scores[i], i))
    kept = np.zeros(len(scores), bool)
    for i in order[: max(int(count), 0)]:
        kept[i] = True
    return kept


def _row_keep(sparsity, length):
    return int(np.round((1.0 - sparsity) * length))


def wanda(w, x, sparsity=None, n=None, m=None, allowed=None):
    w = np.asarray(w, np.float64)
    x = np.asarray(x, np.float64)
    rows, k = w.shape
    allowed = np.ones(w.shape, bool) if allowed is None else np.asarray(allowed, bool)
    norms = np.array([np.sqrt(sum(x[t, j] ** 2 for t in range(x.shape[0]))) for j in range(k)])
    score = np.abs(w) * norms[None, :]
    mask = np.zeros(w.shape, bool)
    for r in range(rows):
        if n is None:
            mask[r] = _top(score[r], _row_keep(sparsity, k), allowed[r])
        else:
            for g in range(0, k, m):
                mask[r, g : g + m] = _top(score[r, g : g + m], n, allowed[r, g : g + m])
    return mask, np.where(mask, w, 0.0)


def sparsegpt(w, x, sparsity=None, n=None, m=None, allowed=None, blocksize=128,
              percdamp=0.01, mask_scope="row"):  # fmt: skip
    w = np.array(w, np.float64)
    x = np.asarray(x, np.float64)
    rows, k = w.shape
    allowed = np.ones(w.shape, bool) if allowed is None else np.asarray(allowed, bool)
    h = 2.0 / x.shape[0] * (x.T @ x)
    dead = np.diag(h) == 0
    for j in range(k):
        if dead[j]:
            h[j, j] = 1.0
            w[:, j] = 0.0
    h = h + percdamp * np.mean(np.diag(h)) * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: U^T U = H^-1
    mask = np.zeros(w.shape, bool)
    for i1 in range(0, k, blocksize):
        i2 = min(i1 + blocksize, k)
        d = np.diag(u)[i1:i2]
        if n is None:
            score = w[:, i1:i2] ** 2 / d[None, :] ** 2
            if mask_scope == "row":
                count = _row_keep(sparsity, i2) - _row_keep(sparsity, i1)
                for r in range(rows):
                    mask[r, i1:i2] = _top(score[r], count, allowed[r, i1:i2])
            else:
                count = _row_keep(sparsity, rows * i2) - _row_keep(sparsity, rows * i1)
                flat = _top(score.reshape(-1), count, allowed[:, i1:i2].reshape(-1))
                mask[:, i1:i2] = flat.reshape(rows, i2 - i1)
        for i in range(i1, i2):
            if n is not None and (i - i1) % m == 0:
                g2 = min(i + m, k)
                score = w[:, i:g2] ** 2 / np.diag(u)[None, i:g2] ** 2
                for r in range(rows):
                    mask[r, i:g2] = _top(score[r], n, allowed[r, i:g2])
            # Prune column i and move every later column at once (OBS: the error of each
            # row, times row i of U); SparseGPT's lazy per-block batching is the same sum.
            err = np.where(mask[:, i], 0.0, w[:, i]) / u[i, i]
            w[:, i:] -= np.outer(err, u[i, i:])
            w[~mask[:, i], i] = 0.0
    return mask, w


def reconstruction_error(w, w_new, x):
    """||X W^T - X W_new^T||_F, the layer's output error on the inputs X (N, K)."""
    x = np.asarray(x, np.float64)
    return float(np.linalg.norm(x @ np.asarray(w, np.float64).T - x @ np.asarray(w_new).T))
