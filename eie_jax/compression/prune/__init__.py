"""Pruning as score x structure x distribution x schedule, each a registry (see registry.py).

    config.prune = prune.defaults(score="magnitude", structure="unstructured",
                                  distribution="per_layer", schedule="gradual",
                                  sparsity=0.92, layers=dict(fc3=dict(sparsity=0.74)))

`validate(config.prune, layer_names)` checks it before any work; `layer_targets` gives each
layer's target after the distribution; `prune_model` recomputes every mask; the schedule
drivers in schedules.py run a prune-and-retrain stage. `calibrated_prune` prunes a model
once with a calibrated rule (Wanda, SparseGPT: calibrated.py; one_shot.py), from its
inputs on data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from eie_jax.compression.layers import compressible_layers
from eie_jax.compression.prune import (
    calibrated,
    distributions,
    one_shot,
    schedules,
    scores,
    structures,
)
from eie_jax.compression.prune.one_shot import calibrated_prune
from eie_jax.compression.prune.registry import (
    KINDS,
    REGISTRY,
    Setting,
    all_settings,
    defaults,
    entry_settings,
    get,
    layer_settings,
    register,
    section,
    validate,
)
from eie_jax.compression.prune.schedules import Context, Schedule, cubic_sparsity, gradual
from eie_jax.compression.prune.scores import train_learned
from eie_jax.compression.prune.structures import (
    balanced_mask,
    n_m_mask,
    sparsity_mask,
    std_threshold_mask,
)
from eie_jax.utils.cli import UserError

__all__ = [
    "KINDS", "REGISTRY", "Setting", "all_settings", "defaults", "entry_settings", "get",
    "layer_settings", "register", "section", "validate", "Context", "Schedule", "cubic_sparsity",
    "gradual", "train_learned", "balanced_mask", "n_m_mask", "sparsity_mask",
    "std_threshold_mask", "layer_targets", "prune_model", "distributions", "scores",
    "schedules", "structures", "calibrated", "one_shot", "calibrated_prune",
]  # fmt: skip


def layer_targets(config: dict, model) -> dict[str, float | None]:
    """{layer: its target after the distribution} (sparsity, or quality for `std`; None for
    a structure that sets its own density). `config` is a validated prune config."""
    layers = compressible_layers(model)
    structures = {name: layer_settings(config, name)["structure"] for name, _ in layers}
    kinds = {name: get("structure", st).info["target"] for name, st in structures.items()}
    raw = {
        name: None if kinds[name] is None else float(layer_settings(config, name)[kinds[name]])
        for name, _ in layers
    }
    dist = get("distribution", config["distribution"])
    if dist.name == "per_layer":
        return raw
    bad = sorted(name for name, kind in kinds.items() if kind != "sparsity")
    if bad:
        raise UserError(
            f"config.prune.distribution={dist.name!r}: needs a structure with a sparsity target "
            f"in every layer; {bad[0]} has structure {structures[bad[0]]!r}"
        )
    sizes = {name: int(jnp.size(layer.mask[...])) for name, layer in layers}
    return dist.fn(raw, sizes, **entry_settings(dist, config))


def prune_model(model, config, *, scale: float = 1.0, seed: int = 0, targets=None, skip=()) -> dict:
    """Recomputes every compressible layer's mask and writes it (kernel zeroed).

    config: a prune config (dict or ConfigDict; missing settings take their defaults).
    scale: the fraction of the way to each target a schedule has reached (1.0 = the
    target; ignored by structures that set their own density). seed: for random scores.
    targets: {layer: target}, default `layer_targets(config, model)`. Masks only lose
    entries: weights already pruned stay pruned. skip: names of layers left as they are.
    Returns {layer name: fraction kept}.
    """
    structures._check_range("scale", scale, 0.0, 1.0, hi_inclusive=True)
    layers = compressible_layers(model)
    config = validate(config, [name for name, _ in layers], where="prune")
    targets = layer_targets(config, model) if targets is None else targets
    score = get("score", config["score"])
    if score.info.get("learned"):
        raise UserError("prune_model: the 'learned' score trains its masks (train_learned)")
    kept = {}
    for i, (name, layer) in enumerate(layers):
        if name in skip:
            continue
        if layer.phase == "shared":
            raise ValueError(f"prune_model: layer {name!r} is already shared; prune before sharing")
        s = layer_settings(config, name)
        structure = get("structure", s["structure"])
        target = None if targets[name] is None else scale * targets[name]
        ranking = score.fn(layer, jax.random.fold_in(jax.random.key(seed), i))
        old = layer.mask[...]
        kwargs = entry_settings(structure, s)
        kwargs.pop(structure.info["target"], None)  # passed as `target`, scaled
        if structure.info["layout"] == "hardware":
            hw = structure.fn(layer.to_matrix(ranking), target, layer.to_matrix(old), **kwargs)
            new = layer.from_matrix(hw)
        else:
            new = structure.fn(ranking, target, old, **kwargs)
        layer.set_mask(new)
        kept[name] = float(jnp.mean(layer.mask[...]))
    return kept
