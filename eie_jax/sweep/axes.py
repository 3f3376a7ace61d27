"""Sweep axes: `sweep`, `product`, `zip_` build override sets; `expand` checks them.

A sweep config file defines `get_config(arg)` (the base ConfigDict) and `get_sweep(arg)`
(the axes), in the spirit of big_vision's config/hyper files:

    def get_sweep(arg=None):
      return product(sweep('layer', ['Alex-7', 'VGG-7']), sweep('eie.fifo_depth', [1, 8]))

The expander turns the axes into a list of points ({'layer': 'Alex-7', 'eie.fifo_depth':
1}, ...), each field checked against the base config.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from eie_jax.utils import workdir
from eie_jax.utils.cli import UserError

Overrides = dict[str, Any]


def sweep(field: str, values: Sequence[Any]) -> list[Overrides]:
    """One axis: [{field: v} for v in values]."""
    if not isinstance(field, str) or not field:
        raise UserError(f"sweep field={field!r}: must be a non-empty dotted name")
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise UserError(f"sweep({field!r}) values={values!r}: must be a list of values")
    if not values:
        raise UserError(f"sweep({field!r}) values=[]: an axis needs at least one value")
    return [{field: v} for v in values]


def product(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Cartesian product of axes; the last axis varies fastest."""
    return [_merge(combo, "product") for combo in itertools.product(*axes)]


def zip_(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Axes side by side: point i merges the i-th entry of every axis (equal lengths)."""
    lengths = [len(axis) for axis in axes]
    if len(set(lengths)) > 1:
        raise UserError(f"zip_: axes must have equal lengths, got {lengths}")
    return [_merge(combo, "zip_") for combo in zip(*axes, strict=True)]


def _merge(parts: Sequence[Overrides], how: str) -> Overrides:
    merged: Overrides = {}
    for part in parts:
        for field, value in part.items():
            if field in merged:
                raise UserError(f"{how}: field {field!r} appears in more than one axis")
            merged[field] = value
    return merged


def expand(config: ml_collections.ConfigDict, axes: Sequence[Overrides]) -> list[Overrides]:
    """Checks every point against `config` and returns them as a list.

    Raises UserError naming the field when a field does not exist in the config or its
    value has the wrong type, and when two points are identical (their results could not
    be told apart).
    """
    points = [dict(point) for point in axes]
    seen = {}
    for i, point in enumerate(points):
        workdir.apply_overrides(config, point, "config")
        key = point_key(point)
        if key in seen:
            raise UserError(f"sweep points {seen[key]} and {i} are identical: {point}")
        seen[key] = i
    return points


def check_not_swept(fields: Iterable[str], axes: Sequence[Overrides], config_file: str):
    """Refuses a command-line override (`--config.<field>=...`) of a field the sweep varies.

    fields: the dotted fields the command line overrode; axes: the sweep's points;
    config_file: the sweep config file, named in the message. Each point's value would
    replace the override without a word, so a field that a point sets (in whole, or in
    part: a field inside it or, for a dict value merged into a group, a field it names)
    is refused, naming the field and its axis.
    """
    swept = {}  # every dotted field a point sets -> the axis that sets it
    for point in axes:
        for axis, value in point.items():
            swept.update(dict.fromkeys(_set_fields(axis, value), axis))
    for field in fields:
        for leaf, axis in swept.items():
            if field == leaf or field.startswith(leaf + ".") or leaf.startswith(field + "."):
                raise UserError(
                    f"--config.{field}: the sweep varies this field (axis {axis}); change "
                    f"the sweep's values in {config_file} instead"
                )


def _set_fields(field: str, value) -> list[str]:
    """The dotted fields an override writes: a dict value is merged into its group
    (`workdir.apply_overrides`), so it writes the fields it names, and only those."""
    if isinstance(value, Mapping | ml_collections.ConfigDict):
        return [leaf for k, v in value.items() for leaf in _set_fields(f"{field}.{k}", v)]
    return [field]


def point_key(overrides: Mapping[str, Any]) -> str:
    """A canonical string for one point, used to recognise finished points."""
    return json.dumps(workdir.jsonable(dict(overrides)), sort_keys=True)


def load_sweep_file(spec: str) -> tuple[ml_collections.ConfigDict, list[Overrides]]:
    """Loads `path.py[:arg]`: (get_config(arg), get_sweep(arg))."""
    path, _, arg = spec.partition(":")
    module = _load_module(path)
    args = (arg,) if arg else ()
    return module.get_config(*args), load_axes(spec, module)


def load_axes(spec: str, module=None) -> list[Overrides]:
    """get_sweep(arg) of the config file named by `path.py[:arg]`."""
    path, _, arg = spec.partition(":")
    module = module or _load_module(path)
    if not hasattr(module, "get_sweep"):
        raise UserError(f"--config={path}: defines no get_sweep(); it is not a sweep config")
    points = list(module.get_sweep(*((arg,) if arg else ())))
    if not points:
        raise UserError(f"--config={spec}: get_sweep() returned no points")
    return points


def _load_module(path: str):
    if not os.path.exists(path):
        raise UserError(f"--config={path}: file not found")
    spec = importlib.util.spec_from_file_location(f"sweep_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
