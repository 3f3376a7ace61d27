"""One-shot pruning of a whole model with a calibrated rule (calibrated.py: Wanda, SparseGPT).

`calibrated_prune(model, calibration, rule, sparsity | n, m)` runs a rule on every
compressible layer of a model, in the order of the model's forward, each on the inputs it
receives from the model as pruned so far (as both papers prune layer after layer); the
mask goes into the layer's Mask and the updated weight into its kernel. The inputs are
observed through the layers' products (`products.intercept`), so any model built from
compressible layers works through its own forward.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression.compressible import check_rules, match_rule
from eie_jax.compression.layers import compressible_layers
from eie_jax.compression.products import intercept
from eie_jax.compression.prune.calibrated import (
    TARGET_KEYS,
    check_target,
    get,
    prune_matrix,
    rule_settings,
)
from eie_jax.utils.cli import UserError


class _Inputs:
    """An interceptor that observes the compressible layers in `names` ({id: name}): the
    order of their first calls, and the input vectors (N, K) of the layers that
    `wanted(name, order so far)` chooses, their columns in the order of `to_matrix`."""

    calibrating = True

    def __init__(self, names: dict, wanted):
        self.names, self.wanted = names, wanted
        self.order: list[str] = []
        self.vectors: dict[str, list] = {}
        self._columns: dict = {}

    def selects(self, layer) -> bool:
        return id(layer) in self.names

    def observe(self, layer, product, bias) -> None:
        del bias
        name = self.names[id(layer)]
        if name not in self.order:
            self.order.append(name)
        if not self.wanted(name, self.order):
            return
        if isinstance(product.vectors, jax.core.Tracer):
            raise UserError(
                f"calibrated_prune: layer {name!r} was called under a JAX transform (jit, "
                "vmap, scan); the model's forward must run eagerly"
            )
        key = (id(layer), product.key)
        if key not in self._columns:
            self._columns[key] = _columns(name, layer, product)
        cols = self._columns[key]
        x = np.asarray(product.vectors, np.float32)
        self.vectors.setdefault(name, []).append(x if cols is None else x[:, cols])

    def inputs(self, name: str) -> np.ndarray:
        return np.concatenate(self.vectors[name])


def _columns(name, layer, product):
    """The permutation taking the product's input columns to `layer.to_matrix`'s (None:
    the same order); UserError when no permutation does (a grouped conv)."""
    index = np.arange(1, int(np.prod(layer.kernel_shape)) + 1).reshape(layer.kernel_shape)
    ours = np.asarray(layer.to_matrix(index))
    theirs = np.asarray(product.matrix(index))
    if theirs.shape == ours.shape and (theirs == ours).all():
        return None
    where = {v: c for c, v in enumerate(theirs[0])} if theirs.shape == ours.shape else {}
    cols = np.array([where.get(v, -1) for v in ours[0]])
    if (cols < 0).any() or not (theirs[:, cols] == ours).all():
        raise UserError(
            f"calibrated_prune: layer {name!r}: its product is not its kernel as one dense "
            "matrix (a grouped conv); leave it out with a rule (name, None)"
        )
    return cols


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One layer's target and settings."""

    sparsity: float | None
    n: int | None
    m: int | None
    settings: dict


def _plans(layers, entry, rules, target: dict, settings: dict) -> dict[str, _Plan]:
    """{name: _Plan} of the layers to prune; a rule's override that names any of sparsity,
    n, m sets the layer's whole target (the others None)."""
    rules = check_rules(rules, {*TARGET_KEYS, *entry.settings}, "calibrated_prune")
    plans = {}
    for name, layer in layers:
        overrides = match_rule(rules, name)
        if overrides is None:
            continue
        if layer.phase != "dense":
            raise UserError(
                f"calibrated_prune: layer {name!r} is in phase {layer.phase!r}; it prunes "
                "dense layers (before sharing; freeze_scores first)"
            )
        where = f"calibrated_prune: layer {name!r}"
        tgt = dict(target)
        if any(key in overrides for key in TARGET_KEYS):
            tgt = {key: overrides.pop(key, None) for key in TARGET_KEYS}
        check_target(tgt["sparsity"], tgt["n"], tgt["m"], where)
        own = rule_settings(entry, {**settings, **overrides}, f"calibrated_prune.{entry.name}")
        plans[name] = _Plan(tgt["sparsity"], tgt["n"], tgt["m"], own)
    return plans


def _record(model, inputs, names: dict, wanted) -> _Inputs:
    recorder = _Inputs(names, wanted)
    with intercept(recorder):
        model(*inputs)
    return recorder


def calibrated_prune(
    model,
    calibration,
    rule: str = "wanda",
    sparsity: float | None = 0.5,
    *,
    n: int | None = None,
    m: int | None = None,
    rules=None,
    sequential: bool = True,
    **settings,
) -> dict[str, float]:
    """Prunes every compressible layer once with a calibrated rule, in place; returns
    {layer: fraction kept}, in the order of the model's forward.

    calibration: the model's positional input (an array) or inputs (a tuple), run through
    the model's own forward eagerly (all at once: each layer's inputs are held in memory).
    rule: "wanda" or "sparsegpt" (or any `register`ed rule), `settings` its own (sparsegpt:
    blocksize, percdamp, mask_scope). sparsity: each layer's unstructured target; n, m:
    N:M along the inputs instead (sparsity is then not used). rules: [(regex, overrides)]
    on layer names, first full match wins: overrides set `sparsity` or `n` and `m` (the
    layer's whole target) and the rule's settings; None leaves the layer as it is.
    sequential: each layer sees its inputs from the model with the layers before it
    already pruned (one forward per layer, as the papers prune); False: all from the
    model as given (one forward). Masks only lose entries (a weight pruned before stays
    pruned); the kept weights take the rule's values (SparseGPT's updates).
    """
    entry = get(rule)
    if n is not None or m is not None:
        sparsity = None
    target = dict(zip(TARGET_KEYS, check_target(sparsity, n, m, "calibrated_prune"), strict=True))
    rule_settings(entry, settings, f"calibrated_prune.{entry.name}")
    layers = compressible_layers(model)
    if not layers:
        raise UserError(
            "calibrated_prune: the model has no compressible layer; call "
            "eie_jax.make_compressible first"
        )
    plans = _plans(layers, entry, rules, target, settings)
    by_name = dict(layers)
    names = {id(by_name[name]): name for name in plans}
    inputs = calibration if isinstance(calibration, tuple) else (calibration,)

    first = _record(model, inputs, names, lambda name, order: not sequential or name == order[0])
    missing = [name for name in plans if name not in first.order]
    if missing:
        raise UserError(
            f"calibrated_prune: layer {missing[0]!r} is not called by the model's forward on "
            "the calibration inputs; leave it out with a rule (name, None)"
        )
    kept = {}
    for i, name in enumerate(first.order):
        if sequential and i > 0:
            wanted = lambda other, _, name=name: other == name  # noqa: E731
            x = _record(model, inputs, names, wanted).inputs(name)
        else:
            x = first.inputs(name)
        layer, plan = by_name[name], plans[name]
        w = np.asarray(layer.to_matrix(layer.effective_kernel()), np.float32)
        old = np.asarray(layer.to_matrix(layer.mask[...])) > 0
        mask, w_new = prune_matrix(rule, w, x, sparsity=plan.sparsity, n=plan.n, m=plan.m,
                                   mask=old, **plan.settings)  # fmt: skip
        kernel = layer.from_matrix(jnp.asarray(w_new, jnp.float32))
        layer.kernel[...] = kernel.astype(layer.kernel[...].dtype)
        layer.set_mask(layer.from_matrix(jnp.asarray(mask, jnp.float32)))
        kept[name] = float(mask.mean())
    return kept
