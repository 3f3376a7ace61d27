"""Pruning rules and schedules (Han et al. NIPS 2015; Zhu & Gupta 2017; ESE; NVIDIA 2:4).

Rules are pure functions from weights (and the current 0/1 mask) to a new 0/1 mask; they
only ever remove weights: an entry that is 0 in `mask` stays 0. They run eagerly or under
jit (the sparsity may be traced; shapes, num_pes, block_cols, n and m are static).

Schedules answer the two questions of a training loop, with an int step, under jit:
`schedule.is_pruning_step(step)` and `schedule.sparsity(step)`.

Layouts: `std_threshold_mask` and `sparsity_mask` are elementwise and take any shape;
`balanced_mask` and `n_m_mask` take EIE's hardware matrix W (M rows = outputs, K columns =
inputs), which is `eie_jax.layers.to_hardware(kernel)` (kernel.T for a linear layer).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax.numpy as jnp

from eie_jax.layers import compressible_layers, from_hardware, to_hardware

RULES = ("std", "sparsity", "balanced", "n_m", "none")


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


# -- schedules -----------------------------------------------------------------------


class Schedule(NamedTuple):
    """Two jit-compatible functions of an int step.

    sparsity(step): the target the mask should have after the latest pruning step (0.0
      before the first); for the std rule read it as the quality parameter.
    is_pruning_step(step): whether masks are recomputed at this step.
    """

    sparsity: Callable
    is_pruning_step: Callable


def one_shot(target: float, at_step: int = 0) -> Schedule:
    """Prune once to `target` at `at_step` and keep the mask (NVIDIA 2:4 recipe; Han 2015)."""
    _check_range("target", target, 0.0, float("inf"))
    _check_int("at_step", at_step, 0)

    def sparsity(step):
        return jnp.where(jnp.asarray(step) >= at_step, target, 0.0).astype(jnp.float32)

    def is_pruning_step(step):
        return jnp.asarray(step) == at_step

    return Schedule(sparsity, is_pruning_step)


def iterative(targets: Sequence[float], steps_per_round: int, begin_step: int = 0) -> Schedule:
    """Rounds of prune + retrain (Han et al. NIPS 2015, Sec. 3.3).

    Round i prunes at step begin_step + i * steps_per_round to targets[i] and retrains until
    the next round; targets are nondecreasing sparsities (or std qualities).
    """
    targets = tuple(float(t) for t in targets)
    increasing = all(b >= a for a, b in zip(targets, targets[1:], strict=False))
    if not targets or min(targets) < 0 or not increasing:
        raise ValueError(f"targets: {targets!r}; allowed: a nonempty nondecreasing list >= 0")
    _check_int("steps_per_round", steps_per_round, 1)
    _check_int("begin_step", begin_step, 0)
    table = jnp.asarray(targets, jnp.float32)

    def sparsity(step):
        step = jnp.asarray(step)
        rnd = jnp.clip((step - begin_step) // steps_per_round, 0, len(targets) - 1)
        return jnp.where(step >= begin_step, table[rnd], 0.0)

    def is_pruning_step(step):
        step = jnp.asarray(step)
        offset = step - begin_step
        return (
            (offset >= 0)
            & (offset % steps_per_round == 0)
            & (offset // steps_per_round < len(targets))
        )

    return Schedule(sparsity, is_pruning_step)


def cubic_sparsity(step, initial_sparsity, final_sparsity, begin_step, end_step):
    """Zhu & Gupta 2017, Eq. 1: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3.

    t is clipped to [t0, t0 + n dt] = [begin_step, end_step].
    """
    t = jnp.clip(jnp.asarray(step), begin_step, end_step)
    progress = (t - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def gradual(
    initial_sparsity: float,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int,
) -> Schedule:
    """Gradual pruning (Zhu & Gupta 2017, Sec. 3): every `frequency` steps from begin_step,
    and at end_step, the mask is recomputed at the cubic sparsity `cubic_sparsity`; the
    sparsity holds between pruning steps and is final_sparsity from end_step on.
    """
    _check_range("initial_sparsity", initial_sparsity, 0.0, 1.0, hi_inclusive=True)
    _check_range("final_sparsity", final_sparsity, 0.0, 1.0, hi_inclusive=True)
    _check_int("begin_step", begin_step, 0)
    _check_int("frequency", frequency, 1)
    if not isinstance(end_step, numbers.Integral) or end_step <= begin_step:
        raise ValueError(f"end_step: {end_step!r}; allowed: an integer > begin_step = {begin_step}")

    def sparsity(step):
        step = jnp.asarray(step)
        last = begin_step + (jnp.maximum(step - begin_step, 0) // frequency) * frequency
        last = jnp.where(step >= end_step, end_step, last)
        s = cubic_sparsity(last, initial_sparsity, final_sparsity, begin_step, end_step)
        return jnp.where(step >= begin_step, s, 0.0).astype(jnp.float32)

    def is_pruning_step(step):
        step = jnp.asarray(step)
        on_grid = (step - begin_step) % frequency == 0
        return (step >= begin_step) & (step <= end_step) & (on_grid | (step == end_step))

    return Schedule(sparsity, is_pruning_step)


# -- applying a rule to a model ------------------------------------------------------

_SETTINGS = ("rule", "quality", "sparsity", "num_pes", "block_cols", "n", "m")
_NEEDS = {
    "std": ("quality",),
    "sparsity": ("sparsity",),
    "balanced": ("sparsity", "num_pes"),
    "n_m": (),
    "none": (),
}


def _as_dict(config) -> dict:
    if config is None:
        return {}
    return dict(config.to_dict() if hasattr(config, "to_dict") else config)


def _layer_settings(rule_config: Mapping, names: Sequence[str]) -> dict[str, dict]:
    base = _as_dict(rule_config)
    per_layer = _as_dict(base.pop("layers", None))
    unknown = sorted(set(base) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"rule_config: unknown keys {unknown}; allowed: {_SETTINGS + ('layers',)}")
    missing = sorted(set(per_layer) - set(names))
    if missing:
        raise ValueError(f"rule_config.layers: unknown layers {missing}; allowed: {list(names)}")
    settings = {}
    for name in names:
        s = {"n": 2, "m": 4, "block_cols": None, **base, **_as_dict(per_layer.get(name))}
        where = f"rule_config.layers.{name}" if name in per_layer else "rule_config"
        unknown = sorted(set(s) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed: {_SETTINGS}")
        rule = s.get("rule")
        if rule not in RULES:
            raise ValueError(f"{where}.rule: {rule!r}; allowed: {', '.join(RULES)}")
        for key in _NEEDS[rule]:
            if s.get(key) is None:
                raise ValueError(f"{where}.{key}: missing; rule {rule!r} needs {_NEEDS[rule]}")
        settings[name] = s
    return settings


def prune_model(model, rule_config, *, scale: float = 1.0) -> dict[str, float]:
    """Recomputes every compressible layer's mask with its rule and writes it (kernel zeroed).

    rule_config (dict or ConfigDict): `rule` in RULES, the rule's settings (`quality` for
    'std', `sparsity` for 'sparsity', `sparsity` and `num_pes` [and `block_cols`] for
    'balanced', `n` and `m` for 'n_m'), and optional `layers`: {layer name: overrides},
    e.g. dict(rule='std', quality=1.0, layers=dict(fc3=dict(quality=0.5))).
    scale multiplies each layer's sparsity / quality (n:m ignores it): the fraction of the way
    to the target a schedule has reached (1.0 = the full target). Masks only lose entries:
    weights already pruned stay pruned. Returns {layer name: fraction of weights kept}.
    """
    _check_range("scale", scale, 0.0, 1.0, hi_inclusive=True)
    layers = compressible_layers(model)
    settings = _layer_settings(rule_config, [name for name, _ in layers])
    kept = {}
    for name, layer in layers:
        s = settings[name]
        if layer.phase == "shared":
            raise ValueError(f"prune_model: layer {name!r} is already shared; prune before sharing")
        w, old = layer.kernel[...], layer.mask[...]
        rule = s["rule"]
        if rule == "std":
            new = std_threshold_mask(w, scale * s["quality"], old)
        elif rule == "sparsity":
            new = sparsity_mask(w, scale * s["sparsity"], old)
        elif rule == "balanced":
            sparsity = scale * s["sparsity"]
            hw = balanced_mask(
                to_hardware(w), sparsity, s["num_pes"], s["block_cols"], to_hardware(old)
            )
            new = from_hardware(hw, w.shape)
        elif rule == "n_m":
            new = from_hardware(n_m_mask(to_hardware(w), s["n"], s["m"], to_hardware(old)), w.shape)
        else:
            new = old
        layer.set_mask(new)
        kept[name] = float(jnp.mean(layer.mask[...]))
    return kept
