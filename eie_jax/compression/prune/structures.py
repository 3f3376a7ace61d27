"""Structures: which weights a mask may drop together (the `structure` of a pruning method).

Each is a pure function (score, target, mask, **settings) -> new 0/1 mask that only ever
removes weights: an entry that is 0 in `mask` stays 0. The score ranks weights by magnitude
(|score|; the `magnitude` score is the weight itself). They run eagerly or under jit (the
target may be traced; shapes, num_pes, block_cols, n and m are static).

Layouts: elementwise structures take any shape (the kernel's); `layout="hardware"` ones
take EIE's matrix W (M rows = outputs, K columns = inputs), which is
`compression.layers.to_hardware(kernel)` (kernel.T for a linear layer). `target` is the layer's
sparsity, or for `std` its quality (`target=` in the registration says which; None: the
structure sets its own density, as N:M does).

To add a structure: one function here, decorated with `@register("structure", NAME,
settings=..., layout=..., target=...)`; its settings become `config.prune.<setting>` fields.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp

from eie_jax.compression.prune.registry import non_negative, positive_int, register
from eie_jax.utils import schema


def _check_range(name, value, lo, hi, *, hi_inclusive=False):
    # Traced values cannot be checked; concrete Python numbers are checked at the edge.
    if isinstance(value, numbers.Real) and not (
        lo <= value and (value <= hi if hi_inclusive else value < hi)
    ):
        bracket = "]" if hi_inclusive else ")"
        raise ValueError(f"{name}: {value!r}; allowed: [{lo}, {hi}{bracket}")


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name}: {value!r}; allowed: an integer >= {lo}")


def _allowed(w, mask):
    return jnp.ones(w.shape, bool) if mask is None else jnp.asarray(mask) > 0


def _ranks_desc(scores):
    """Rank of each entry along the last axis, 0 = largest; ties broken by position."""
    order = jnp.argsort(-scores, axis=-1, stable=True)
    return jnp.argsort(order, axis=-1, stable=True)


def std_threshold_mask(w, quality, mask=None):
    """Keeps |w| > quality * std(w) (Han et al., NIPS 2015, Sec. 3 / Deep Compression Sec. 2).

    The std is taken over the weights still alive in `mask` (all weights without a mask), so
    that iterative rounds threshold the survivors; pruned entries stay pruned.
    Returns a float 0/1 mask of w's shape.
    """
    _check_range("quality", quality, 0.0, float("inf"))
    w = jnp.asarray(w)
    alive = _allowed(w, mask)
    n = jnp.maximum(jnp.sum(alive), 1)
    mean = jnp.sum(jnp.where(alive, w, 0.0)) / n
    std = jnp.sqrt(jnp.sum(jnp.where(alive, (w - mean) ** 2, 0.0)) / n)
    return (alive & (jnp.abs(w) > quality * std)).astype(jnp.float32)


def sparsity_mask(w, sparsity, mask=None):
    """Magnitude pruning to a target sparsity: keeps the round((1 - sparsity) * w.size)
    largest |w| (Deep Compression Sec. 2 with a per-layer target instead of a threshold).

    Entries already pruned in `mask` are never kept, so the result may be sparser than
    asked. Ties are broken by position, so the kept count is exact.
    """
    _check_range("sparsity", sparsity, 0.0, 1.0, hi_inclusive=True)
    w = jnp.asarray(w)
    alive = _allowed(w, mask)
    score = jnp.where(alive, jnp.abs(w), -jnp.inf).reshape(-1)
    keep = jnp.round((1.0 - sparsity) * w.size).astype(jnp.int32)
    kept = (_ranks_desc(score) < keep) & jnp.isfinite(score)
    return kept.reshape(w.shape).astype(jnp.float32)


def balanced_mask(w_hw, sparsity, num_pes: int, block_cols: int | None = None, mask=None):
    """Load-balance-aware pruning (ESE, Han et al. FPGA 2017, Sec. 3.1) for EIE's PEs.

    W (M, K): row r belongs to PE r mod num_pes (EIE Sec. III-B). The columns are cut into
    blocks of `block_cols` (one block of K columns when None). In every block b each PE
    that holds rows keeps its k_b = round((1 - sparsity) * M * width_b / P) largest-
    magnitude weights, P = min(num_pes, M) the PEs with rows, so every PE does the same
    work per block and the layer keeps (1 - sparsity) of its weights (up to rounding).
    Counts are exactly equal unless the shape or the prior mask forbids it: a PE with
    fewer than k_b live entries in a block (fewer rows when M % num_pes != 0, or earlier
    pruning) keeps all of them, and PEs without rows (M < num_pes) hold nothing.
    """
    _check_range("sparsity", sparsity, 0.0, 1.0, hi_inclusive=True)
    _check_int("num_pes", num_pes, 1)
    w_hw = jnp.asarray(w_hw)
    if w_hw.ndim != 2:
        raise ValueError(f"w_hw: shape {w_hw.shape}; allowed: a 2-D matrix (M, K)")
    m_rows, k_cols = w_hw.shape
    bc = k_cols if block_cols is None else block_cols
    _check_int("block_cols", bc, 1)
    rows = -(-m_rows // num_pes)
    blocks = -(-k_cols // bc)

    score = jnp.where(_allowed(w_hw, mask), jnp.abs(w_hw), -jnp.inf)
    score = jnp.pad(
        score,
        ((0, rows * num_pes - m_rows), (0, blocks * bc - k_cols)),
        constant_values=-jnp.inf,
    )
    # (rows * N, blocks * bc) -> (N, blocks, rows * bc): one group per (PE, column block).
    grouped = score.reshape(rows, num_pes, blocks, bc).transpose(1, 2, 0, 3)
    grouped = grouped.reshape(num_pes, blocks, rows * bc)
    width = jnp.minimum(bc, k_cols - bc * jnp.arange(blocks))
    keep = jnp.round((1.0 - sparsity) * m_rows * width / min(num_pes, m_rows)).astype(jnp.int32)
    kept = (_ranks_desc(grouped) < keep[None, :, None]) & jnp.isfinite(grouped)
    kept = kept.reshape(num_pes, blocks, rows, bc).transpose(2, 0, 1, 3)
    kept = kept.reshape(rows * num_pes, blocks * bc)[:m_rows, :k_cols]
    return kept.astype(jnp.float32)


def n_m_mask(w_hw, n: int = 2, m: int = 4, mask=None):
    """N:M structured sparsity (NVIDIA 2:4, Mishra et al. 2021): keeps the n largest-magnitude
    weights of every m consecutive weights along the input dimension.

    Convention: W is the hardware matrix (M outputs, K inputs) and the groups are
    W[i, g*m:(g+1)*m], consecutive inputs of one output row (for a kernel (in, out) this is
    m consecutive rows of one kernel column). When K % m != 0 the last group of each row has
    r = K % m weights and keeps min(n, r). Entries pruned in `mask` are never kept, so such
    a group may keep fewer than n.
    """
    _check_int("n", n, 1)
    _check_int("m", m, 1)
    if n > m:
        raise ValueError(f"n: {n!r}; allowed: 1 <= n <= m = {m}")
    w_hw = jnp.asarray(w_hw)
    if w_hw.ndim != 2:
        raise ValueError(f"w_hw: shape {w_hw.shape}; allowed: a 2-D matrix (M, K)")
    rows, cols = w_hw.shape
    groups = -(-cols // m)
    score = jnp.where(_allowed(w_hw, mask), jnp.abs(w_hw), -jnp.inf)
    score = jnp.pad(score, ((0, 0), (0, groups * m - cols)), constant_values=-jnp.inf)
    score = score.reshape(rows, groups, m)
    kept = (_ranks_desc(score) < n) & jnp.isfinite(score)
    return kept.reshape(rows, groups * m)[:, :cols].astype(jnp.float32)


# -- the registry ------------------------------------------------------------------------

register("structure", "unstructured", layout="kernel", target="sparsity")(sparsity_mask)
register(
    "structure", "std", settings={"quality": non_negative(1.0, per_layer=True)},
    layout="kernel", target="quality",
)(std_threshold_mask)  # fmt: skip


@register(
    "structure",
    "balanced",
    settings={
        "num_pes": positive_int(64, per_layer=True),
        # 0: one block of all columns
        "block_cols": schema.integer(0, lo=0, per_layer=True),
    },
    layout="hardware",
    target="sparsity",
)
def _balanced(w_hw, sparsity, mask, *, num_pes, block_cols):
    return balanced_mask(w_hw, sparsity, num_pes, block_cols or None, mask)


@register(
    "structure",
    "n_m",
    settings={"n": positive_int(2, per_layer=True), "m": positive_int(4, per_layer=True)},
    layout="hardware",
    target=None,
)
def _n_m(w_hw, target, mask, *, n, m):
    del target  # N:M sets its own density, n / m
    return n_m_mask(w_hw, n, m, mask)


@register("structure", "none", layout="kernel", target=None)
def _none(w, target, mask):
    """Keeps the mask as it is (a layer left dense: `layers.fc3.structure='none'`)."""
    del target
    return jnp.ones(jnp.shape(w), jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
