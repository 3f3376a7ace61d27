"""One-shot pruning with calibration data: Wanda and SparseGPT, on any compressible model.

A calibrated rule sees, beside a layer's weight W (M outputs, K inputs: EIE's layout,
`layer.to_matrix(kernel)`), the layer's inputs X (N, K) on calibration data, and returns
the mask and the updated weight:

    fn(w, x, *, sparsity, n, m, mask, **settings) -> (mask (M, K) bool, w_new (M, K))

unstructured at `sparsity` (each output row keeps round((1 - sparsity) * K) weights, the
project's count, `structures.sparsity_mask`), or N:M along the input dimension when n and m
are given (n kept of every m consecutive inputs of a row, `structures.n_m_mask`'s groups and
convention: for 2:4, n=2, m=4). `mask` (optional) is the set of weights still allowed: a
weight pruned before stays pruned. w_new is 0 where the mask is False.

- wanda (Sun et al., ICLR 2024): score |W_ij| * ||X_j||_2, the top of each output row (or
  of each N:M group) kept; the kept weights unchanged.
- sparsegpt (Frantar & Alistarh, ICML 2023): H = 2 X^T X / N, dead inputs (H_jj = 0) set to
  H_jj = 1 with their weights 0, 1 % (`percdamp`) of mean(diag H) added to the diagonal,
  U = the upper Cholesky factor of H^-1. Columns go in blocks of `blocksize`: each block's
  mask is chosen when the block starts from the weights updated so far, by w^2 / U_jj^2
  (the OBS error of removing w), per output row (`mask_scope="row"`: every row keeps the
  same count, as EIE's PEs own rows) or over the whole block (`"block"`: the reference
  code's threshold over the block); N:M masks are chosen when the column loop reaches each
  group's first column. Every column is then pruned in turn and its error propagated to
  the block's later columns (W1[:, j] -= err * U[i, j], j > i), each block's errors to the
  later blocks at its end. The loop over columns is a `lax.fori_loop` inside a
  `lax.fori_loop` over blocks (K padded to whole blocks with decoupled dummy columns), so a
  matrix shape compiles once whatever the target (the kept counts are arguments).
  Unstructured counts per block are cumulative roundings, so a row keeps exactly
  round((1 - sparsity) * K) weights in all (mask_scope="block": the block's M rows
  together keep round((1 - sparsity) * M * K) in all).

Counts and tie-breaks: scores are ranked with ties to the earlier position
(`structures._ranks_desc`); the reference codes prune int(sparsity * K) per row / block
instead, and for N:M their `prunen` counts the weights removed.

Rules are registered here (`register`), not in registry.py's four kinds: they are no score,
structure, distribution or schedule of the config-driven pipeline, and their settings
(blocksize, percdamp, mask_scope) are no fields of its config. one_shot.py runs a rule on
every layer of a model (`calibrated_prune`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression.prune.registry import Entry, Setting
from eie_jax.compression.prune.structures import _ranks_desc, n_m_mask
from eie_jax.utils import schema
from eie_jax.utils.cli import UserError

RULES: dict[str, Entry] = {}
TARGET_KEYS = ("sparsity", "n", "m")  # what every rule takes beside its settings
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 on a GPU: the OBS updates need float32


def register(name: str, settings: Mapping[str, Setting] | None = None, **info):
    """Decorator: `fn(w, x, *, sparsity, n, m, mask, **settings) -> (mask, w_new)` becomes the
    calibrated rule `name`, reading the settings it declares (schema Fields)."""

    def add(fn):
        for key in settings or {}:
            if key in TARGET_KEYS or key == "mask":
                raise ValueError(f"calibrated {name!r}: setting {key!r} is a reserved name")
        RULES[name] = Entry("calibrated", name, fn, dict(settings or {}), info)
        return fn

    return add


def get(name: str) -> Entry:
    if name not in RULES:
        raise UserError(f"calibrated rule {name!r}: allowed: {sorted(RULES)}")
    return RULES[name]


def check_target(sparsity, n, m, where: str):
    """(sparsity, n, m) checked: a sparsity in [0, 1] xor an N:M with 1 <= n <= m."""
    if (n is None) != (m is None):
        raise UserError(f"{where}: n={n!r}, m={m!r}: give both (N:M) or neither")
    if n is not None:
        if sparsity is not None:
            raise UserError(f"{where}: sparsity={sparsity!r} with n:m={n}:{m}; give one of them")
        if not (schema.is_int(n) and schema.is_int(m) and 1 <= n <= m):
            raise UserError(f"{where}: n:m={n!r}:{m!r}; allowed: ints with 1 <= n <= m")
    elif not (schema.is_number(sparsity) and 0 <= sparsity <= 1):
        raise UserError(f"{where}: sparsity={sparsity!r}; allowed: a number in [0, 1]")
    return sparsity, n, m


def rule_settings(entry: Entry, given: Mapping, where: str) -> dict:
    """The entry's settings: its defaults, then `given` (each checked)."""
    for key in given:
        if key not in entry.settings:
            raise schema.unknown_field(where, key, entry.settings)
    out = {key: field.default for key, field in entry.settings.items()}
    out.update(given)
    for key, value in out.items():
        schema.check_value(value, entry.settings[key], f"{where}.{key}")
    return out


def prune_matrix(rule: str, w, x, *, sparsity=None, n=None, m=None, mask=None, **settings):
    """One matrix by the calibrated rule `rule`: (mask (M, K) bool, w_new (M, K)) as NumPy.

    w: (M, K), EIE's layout; x: (N, K) the layer's calibration inputs; sparsity, or n and m
    (N:M along K); mask: the weights allowed (None: all); settings: the rule's own.
    """
    entry = get(rule)
    where = f"calibrated {rule!r}"
    check_target(sparsity, n, m, where)
    w, x = np.asarray(w), np.asarray(x)
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise UserError(f"{where}: w {w.shape} and x {x.shape}; allowed: (M, K) and (N, K)")
    if mask is not None and np.shape(mask) != w.shape:
        raise UserError(f"{where}: mask {np.shape(mask)}; allowed: w's shape {w.shape}")
    kept, w_new = entry.fn(
        w, x, sparsity=sparsity, n=n, m=m, mask=mask, **rule_settings(entry, settings, where)
    )
    return np.asarray(kept, bool), np.asarray(w_new)


def _allowed(w, mask):
    return np.ones(w.shape, bool) if mask is None else np.asarray(mask) > 0


def _cumulative_counts(keep_fraction: float, ends, per: int) -> np.ndarray:
    """Weights kept in each stretch [ends[i-1], ends[i]) of columns: the differences of
    round(keep_fraction * per * end), so that the stretches add up to the whole's count."""
    upto = np.round(keep_fraction * per * np.concatenate([[0], ends]))
    return np.diff(upto).astype(np.int32)


# ------------------------------------------------------------------ Wanda


def _wanda_score(w, x):
    return jnp.abs(w) * jnp.sqrt(jnp.sum(x * x, axis=0))[None, :]


@jax.jit
def _wanda_rows(w, x, allowed, keep):
    score = _wanda_score(w, x)
    kept = (_ranks_desc(jnp.where(allowed, score, -jnp.inf)) < keep) & allowed
    return kept, jnp.where(kept, w, 0)


@functools.partial(jax.jit, static_argnames=("n", "m"))
def _wanda_n_m(w, x, allowed, *, n, m):
    kept = n_m_mask(_wanda_score(w, x), n, m, allowed) > 0
    return kept, jnp.where(kept, w, 0)


@register("wanda")
def wanda(w, x, *, sparsity=None, n=None, m=None, mask=None):
    """Wanda: keeps the largest |W_ij| * ||X_j||_2 of each output row (or N:M group)."""
    w = jnp.asarray(w)
    x = jnp.asarray(x, w.dtype)
    allowed = jnp.asarray(_allowed(w, mask))
    if n is not None:
        return _wanda_n_m(w, x, allowed, n=n, m=m)
    keep = int(np.round((1.0 - sparsity) * w.shape[1]))
    return _wanda_rows(w, x, allowed, jnp.int32(keep))


# ------------------------------------------------------------------ SparseGPT


def _upper_inverse_factor(h, percdamp):
    """(U, dead): U upper triangular with U^T U = (H + damping)^-1, dead inputs fixed.

    With J the reversal of the columns and J H J = L L^T (Cholesky), H^-1 = J L^-T L^-1 J,
    so U = J L^-1 J: one Cholesky and one triangular solve (the reference code's
    cholesky_inverse and second Cholesky give the same factor)."""
    k = h.shape[0]
    eye = jnp.eye(k, dtype=h.dtype)
    dead = jnp.diag(h) == 0
    h = jnp.where(eye.astype(bool) & dead[None, :], 1.0, h)
    h = h + percdamp * jnp.mean(jnp.diag(h)) * eye
    lower = jnp.linalg.cholesky(h[::-1, ::-1])
    inverse = jax.scipy.linalg.solve_triangular(lower, eye, lower=True)
    return inverse[::-1, ::-1], dead


@functools.partial(jax.jit, static_argnames=("blocksize", "n", "m", "scope"))
def _sparsegpt(w, x, allowed, keep, percdamp, *, blocksize, n, m, scope):
    rows, k = w.shape
    size = blocksize
    blocks = -(-k // size)
    pad = blocks * size - k
    h = (2.0 / x.shape[0]) * jnp.matmul(x.T, x, precision=_HIGHEST)
    u, dead = _upper_inverse_factor(h, percdamp)
    w = jnp.where(dead[None, :], 0.0, w)
    # Padding columns: zero weights never kept, decoupled from the others (U's identity).
    w = jnp.pad(w, ((0, 0), (0, pad)))
    allowed = jnp.pad(allowed, ((0, 0), (0, pad)))
    u = jnp.pad(u, ((0, pad), (0, pad))).at[jnp.arange(k, k + pad), jnp.arange(k, k + pad)].set(1)
    col = jnp.arange(blocks * size)

    def block(b, state):
        W, mask = state
        i1 = b * size
        W1 = jax.lax.dynamic_slice_in_dim(W, i1, size, axis=1)
        A1 = jax.lax.dynamic_slice_in_dim(allowed, i1, size, axis=1)
        U1 = jax.lax.dynamic_slice(u, (i1, i1), (size, size))
        d = jnp.diag(U1)
        if n is None:  # the block's mask, from the weights updated so far
            score = jnp.where(A1, W1**2 / d[None, :] ** 2, -jnp.inf)
            if scope == "row":
                ranks = _ranks_desc(score)
            else:
                ranks = _ranks_desc(score.reshape(-1)).reshape(rows, size)
            M1 = (ranks < keep[b]) & A1
        else:
            M1 = jnp.zeros((rows, size), bool)

        def column(i, inner):
            W1, M1, E1 = inner
            if n is not None:  # the group's mask, when the loop reaches its first column
                g = jax.lax.dynamic_slice_in_dim(W1, i, m, axis=1)
                ga = jax.lax.dynamic_slice_in_dim(A1, i, m, axis=1)
                gd = jax.lax.dynamic_slice_in_dim(d, i, m)
                gs = jnp.where(ga, g**2 / gd[None, :] ** 2, -jnp.inf)
                chosen = (_ranks_desc(gs) < n) & ga
                grouped = jax.lax.dynamic_update_slice_in_dim(M1, chosen, i, axis=1)
                M1 = jnp.where(i % m == 0, grouped, M1)
            wi = jax.lax.dynamic_index_in_dim(W1, i, axis=1, keepdims=False)
            keep_i = jax.lax.dynamic_index_in_dim(M1, i, axis=1, keepdims=False)
            err = jnp.where(keep_i, 0.0, wi) / U1[i, i]
            # U1 is upper triangular: row i moves columns i.. only; column i becomes q.
            W1 = W1 - err[:, None] * U1[i][None, :]
            E1 = jax.lax.dynamic_update_index_in_dim(E1, err, i, axis=1)
            return W1, M1, E1

        W1, M1, E1 = jax.lax.fori_loop(0, size, column, (W1, M1, jnp.zeros_like(W1)))
        later = jax.lax.dynamic_slice_in_dim(u, i1, size, axis=0)
        update = jnp.matmul(E1, later, precision=_HIGHEST)
        W = W - jnp.where(col[None, :] >= i1 + size, update, 0.0)
        W = jax.lax.dynamic_update_slice_in_dim(W, jnp.where(M1, W1, 0.0), i1, axis=1)
        mask = jax.lax.dynamic_update_slice_in_dim(mask, M1, i1, axis=1)
        return W, mask

    W, mask = jax.lax.fori_loop(0, blocks, block, (w, jnp.zeros(w.shape, bool)))
    return mask[:, :k], W[:, :k]


@register(
    "sparsegpt",
    settings={
        "blocksize": schema.integer(128, lo=1, doc="columns per block of the OBS updates"),
        "percdamp": schema.number(0.01, 0, doc="dampening: this fraction of mean(diag H)"),
        "mask_scope": schema.choice(
            "row", ("row", "block"), doc="unstructured counts per output row or per block"
        ),
    },
)
def sparsegpt(w, x, *, sparsity=None, n=None, m=None, mask=None, blocksize=128,
              percdamp=0.01, mask_scope="row"):  # fmt: skip
    """SparseGPT (module docstring): OBS updates over column blocks with the layer Hessian."""
    w = jnp.asarray(w)
    x = jnp.asarray(x, w.dtype)
    k = w.shape[1]
    if n is not None:
        if blocksize % m:
            raise UserError(f"sparsegpt: blocksize={blocksize} must be a multiple of m={m}")
        size = min(blocksize, -(-k // m) * m)
        keep = jnp.zeros(-(-k // size), jnp.int32)
    else:
        size = min(blocksize, k)
        ends = np.minimum(np.arange(1, -(-k // size) + 1) * size, k)
        per = 1 if mask_scope == "row" else w.shape[0]
        keep = jnp.asarray(_cumulative_counts(1.0 - sparsity, ends, per))
    allowed = jnp.asarray(_allowed(w, mask))
    scope = "row" if n is not None else mask_scope  # N:M: one compilation either way
    return _sparsegpt(w, x, allowed, keep, jnp.asarray(percdamp, w.dtype), blocksize=size,
                      n=n, m=m, scope=scope)  # fmt: skip
