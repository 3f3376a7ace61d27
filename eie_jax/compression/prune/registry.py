"""The registries of a pruning method: score x structure x distribution x schedule.

A pruning method is four choices (as in jaxpruner), each a registered function:

- score (`scores.py`): what ranks the weights: |w|, a random draw, learned scores;
- structure (`structures.py`): which weights may go together: unstructured top-k, Han's std
  threshold, EIE's per-PE balanced counts, N:M groups;
- distribution (`distributions.py`): each layer's target: per-layer values, or one global
  density with Deep Compression's per-layer ratios;
- schedule (`schedules.py`): when masks are recomputed while retraining: one-shot,
  iterative rounds, gradual (cubic).

Each entry declares the settings it reads, with a default and a check; `defaults()` lists
every setting of every entry, so a config built from it can override any of them on the
command line (`--config.prune.n=1`), and `validate` checks a config before any work, naming
the field and the value. A new rule is one decorated function in the file of its kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from eie_jax.utils import schema
from eie_jax.utils.cli import UserError

KINDS = ("score", "structure", "distribution", "schedule")


# A setting an entry reads: its default, a check, the allowed values in words, and whether
# `layers.<name>.<setting>` may override it for one layer (per_layer).
Setting = schema.Field


def fraction(default, per_layer=False) -> Setting:
    return schema.fraction(default, per_layer=per_layer)


def positive_int(default, per_layer=False) -> Setting:
    return schema.integer(default, lo=1, per_layer=per_layer)


def non_negative(default, per_layer=False) -> Setting:
    return schema.number(default, 0, per_layer=per_layer)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered function of one kind, the settings it reads, and facts about it."""

    kind: str
    name: str
    fn: Callable
    settings: Mapping[str, Setting]
    info: Mapping[str, Any]


REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
DEFAULT_ENTRIES = dict(
    score="magnitude", structure="unstructured", distribution="per_layer", schedule="gradual"
)

# Settings every method reads, whatever its entries.
COMMON = {
    "sparsity": fraction(0.9, per_layer=True),  # the fraction of a layer's weights to remove
    "epochs": schema.integer(10, lo=0),
    "learning_rate": schema.number(1e-3, 0, above=True),
}


def register(kind: str, name: str, settings: Mapping[str, Setting] | None = None, **info):
    """Decorator: adds `fn` to the registry of `kind` under `name`, with its settings."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r}; allowed: {KINDS}")

    def add(fn):
        taken = {
            key: e.name for entries in REGISTRY.values() for e in entries.values()
            for key in e.settings
        }  # fmt: skip
        for key in settings or {}:
            if key in KINDS or key in COMMON or key == "layers":
                raise ValueError(f"{kind} {name!r}: setting {key!r} is a reserved name")
            if key in taken and taken[key] != name:
                raise ValueError(f"{kind} {name!r}: setting {key!r} is already {taken[key]!r}'s")
        REGISTRY[kind][name] = Entry(kind, name, fn, dict(settings or {}), info)
        return fn

    return add


def get(kind: str, name: str) -> Entry:
    if name not in REGISTRY[kind]:
        raise UserError(f"config.prune.{kind}={name!r}: allowed: {sorted(REGISTRY[kind])}")
    return REGISTRY[kind][name]


def all_settings() -> dict[str, Setting]:
    """Every setting: the common ones and those of every registered entry."""
    out = dict(COMMON)
    for entries in REGISTRY.values():
        for entry in entries.values():
            out.update(entry.settings)
    return out


def section() -> schema.Section:
    """The schema of a prune config: the four kinds, every setting of every registered
    entry, and `layers` (per-layer overrides of the structure and per-layer settings)."""
    settings = all_settings()
    kinds = {kind: schema.choice(DEFAULT_ENTRIES[kind], REGISTRY[kind]) for kind in KINDS}
    per_layer = {k: s for k, s in settings.items() if s.per_layer}
    layer = schema.Section({"structure": kinds["structure"], **per_layer})
    return schema.Section({**kinds, **settings, "layers": schema.Table(layer, partial=True)})


def defaults(**values) -> dict:
    """A full prune config: every setting at its default, then `values` (validated later)."""
    out = section().defaults().to_dict()
    for key in values:
        if key not in out:
            raise schema.unknown_field("prune", key, out)
    out.update(values)
    return out


def _as_dict(config) -> dict:
    if config is None:
        return {}
    return dict(config.to_dict() if hasattr(config, "to_dict") else config)


def validate(config, layer_names, where: str = "config.prune") -> dict:
    """Checks a prune config (dict or ConfigDict) and returns it as a full dict.

    Raises UserError naming the first bad field (`config.prune.layers.fc1.sparsity=1.5:
    allowed: a number in [0, 1]`): unknown keys (with the closest name), unknown layers,
    out-of-range values wherever they are, and names that no registry holds.
    """
    full = {**defaults(), **_as_dict(config)}
    schema.check(full, section(), where)
    for name in full["layers"]:
        if name not in layer_names:
            raise UserError(f"{where}.layers.{name}: no such layer; layers: {list(layer_names)}")
    full["layers"] = {name: _as_dict(v) for name, v in _as_dict(full["layers"]).items()}
    return full


def layer_settings(config: Mapping, name: str) -> dict:
    """One layer's settings: the config's, with its `layers.<name>` overrides applied."""
    out = {k: v for k, v in config.items() if k != "layers"}
    out.update(config.get("layers", {}).get(name, {}))
    return out


def entry_settings(entry: Entry, settings: Mapping) -> dict:
    """The subset of `settings` that `entry` declares, as keyword arguments for its function."""
    return {key: settings[key] for key in entry.settings}
