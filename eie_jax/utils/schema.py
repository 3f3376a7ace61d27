"""Config schemas: every field of a config declared once, with its default and what it allows.

A config is a tree of sections. A `Section` maps names to `Field`s (a default, a check of a
value and the allowed values in words), to nested Sections, or to `Table`s (entries under
names the user picks: per-layer overrides, a comparison's methods). One schema per study
holds its defaults; config files start from `section.defaults()` and override, the command
line overrides again, and `check(config, section)` refuses, before any work, the first
field the schema does not know (with the closest name it does) or the first value out of
range, as one `UserError` line:

    config.share.metod: no such field; did you mean 'method'? fields: bits, init, ...
    config.seed=-1: allowed: an int >= 0

The constructors below (`integer`, `number`, `choice`, `sequence`, ...) say what a field
allows in words and in code at once; a choice's options may be a callable, read when a
config is checked (registries filled at import time by a user's module).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections

from eie_jax.utils.cli import UserError


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class Field:
    """One value: its default, a check, the allowed values in words, what it means."""

    default: Any
    ok: Callable[[Any], bool]
    allowed: str
    doc: str = ""
    per_layer: bool = False  # may a per-layer table override it (the prune registry's)


class Section:
    """Named Fields, Sections and Tables; `defaults()` is the config they declare."""

    def __init__(self, fields: Mapping[str, Field | Section | Table], doc: str = ""):
        self.fields = dict(fields)
        self.doc = doc

    def defaults(self) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({name: _default(f) for name, f in self.fields.items()})

    def __or__(self, other: Section) -> Section:
        """A Section with `other`'s fields added (and replacing same-named ones)."""
        return Section({**self.fields, **other.fields}, self.doc)


@dataclasses.dataclass(frozen=True)
class Table:
    """Entries under names of the user's choosing, each checked against `entry`.

    partial: an entry may set only some of a Section entry's fields (overrides).
    """

    entry: Field | Section
    default: Mapping = dataclasses.field(default_factory=dict)
    partial: bool = False
    doc: str = ""


def _default(spec):
    if isinstance(spec, Section):
        return spec.defaults()
    if isinstance(spec, Table):
        return ml_collections.ConfigDict(dict(spec.default))
    return spec.default


# ------------------------------------------------------------------ field constructors


def integer(default, lo=None, hi=None, doc="", **kw) -> Field:
    """An int (not a bool) in [lo, hi] (either bound may be None)."""
    if hi is not None:
        allowed = f"an int in {lo}..{hi}"
    else:
        allowed = "an int" if lo is None else f"an int >= {lo}"
    ok = lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
    return Field(default, ok, allowed, doc, **kw)


def number(default, lo=None, hi=None, *, above=False, below=False, doc="", note="", **kw):
    """A finite int or float in [lo, hi]; above/below make the bounds open; note adds a
    word on a special value ('0: none')."""
    parts = []
    if lo is not None and hi is not None:
        parts.append(f"in {'(' if above else '['}{lo}, {hi}{')' if below else ']'}")
    elif lo is not None:
        parts.append(f"{'>' if above else '>='} {lo}")
    elif hi is not None:
        parts.append(f"{'<' if below else '<='} {hi}")
    allowed = " ".join(["a number", *parts]) + (f" ({note})" if note else "")

    def ok(v):
        if not is_number(v):
            return False
        if lo is not None and (v <= lo if above else v < lo):
            return False
        return hi is None or (v < hi if below else v <= hi)

    return Field(default, ok, allowed, doc, **kw)


def fraction(default, doc="", **kw) -> Field:
    return number(default, 0, 1, doc=doc, **kw)


def choice(default, options: Iterable | Callable[[], Iterable], doc="") -> Field:
    """One of `options` (or of `options()`, read at check time)."""
    names = options if callable(options) else (lambda: options)

    class Allowed(str):  # the words are the options of the moment
        def __str__(self):
            return ", ".join(repr(o) for o in names())

    return Field(default, lambda v: _in(v, names()), Allowed(), doc)


def _in(value, options) -> bool:
    try:
        return value in options
    except TypeError:  # an unhashable value in a dict's keys
        return False


def string(default, doc="") -> Field:
    return Field(default, lambda v: isinstance(v, str), "a string", doc)


def boolean(default, doc="") -> Field:
    return Field(default, lambda v: isinstance(v, bool), "True or False", doc)


def regex(default, doc="") -> Field:
    def ok(v):
        try:
            re.compile(v)
        except (re.error, TypeError):
            return False
        return isinstance(v, str)

    return Field(default, ok, "a regular expression", doc)


def sequence(
    default, each: Field, *, nonempty=True, increasing=False, unique=False, doc=""
) -> Field:
    """A list or tuple of values that `each` allows."""
    words = f"a {'nonempty ' if nonempty else ''}list, each {each.allowed}"
    if increasing:
        words += ", increasing"
    if unique:
        words += ", none twice"

    def ok(v):
        if not isinstance(v, list | tuple) or (nonempty and not v):
            return False
        if increasing and list(v) != sorted(v):
            return False
        if unique and len(set(map(repr, v))) != len(v):
            return False
        return all(each.ok(x) for x in v)

    return Field(default, ok, words, doc)


def anything(default, allowed="checked where it is used", doc="") -> Field:
    """A value this schema does not check (a plot spec, a model's own keyword arguments)."""
    return Field(default, lambda v: True, allowed, doc)


# ------------------------------------------------------------------ checking


def _items(value) -> dict | None:
    if isinstance(value, ml_collections.ConfigDict):
        return {k: value[k] for k in value.keys()}
    if isinstance(value, Mapping):
        return dict(value)
    return None


def closest(name: str, names: Iterable[str]) -> str | None:
    """The name of `names` closest to `name`, if any is close."""
    match = difflib.get_close_matches(str(name), [str(n) for n in names], n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_field(where: str, name: str, known: Iterable[str]) -> UserError:
    """'WHERE.NAME: no such field; did you mean 'X'? (fields: ...)'."""
    known = sorted(str(k) for k in known)
    near = closest(name, known)
    hint = f"; did you mean {near!r}?" if near else ""
    return UserError(f"{where}.{name}: no such field{hint} (fields: {', '.join(known)})")


def check(config, section: Section, where: str = "config", *, partial: bool = False) -> None:
    """Raises UserError for the first unknown, missing or out-of-range field of `config`.

    partial: fields may be missing (overrides of a part of the section).
    """
    values = _items(config)
    if values is None:
        raise UserError(f"{where}={config!r}: allowed: a section of fields {list(section.fields)}")
    for name in values:
        if name not in section.fields:
            raise unknown_field(where, name, section.fields)
    for name, spec in section.fields.items():
        if name not in values:
            if partial or isinstance(spec, Table):  # a table may be absent: no entries
                continue
            raise UserError(
                f"{where}.{name}: missing; start the config from the study's schema defaults"
            )
        check_value(values[name], spec, f"{where}.{name}")


def check_value(value, spec, where: str) -> None:
    if isinstance(spec, Section):
        check(value, spec, where)
    elif isinstance(spec, Table):
        entries = _items(value)
        if entries is None:
            raise UserError(f"{where}={value!r}: allowed: a table of name -> entry")
        for name, entry in entries.items():
            if isinstance(spec.entry, Section):
                check(entry, spec.entry, f"{where}.{name}", partial=spec.partial)
            else:
                check_value(entry, spec.entry, f"{where}.{name}")
    elif not spec.ok(value):
        raise UserError(f"{where}={value!r}: allowed: {spec.allowed}")


def field_at(section: Section, path: str):
    """The spec at a dotted path of a section (None when there is none)."""
    spec = section
    for part in path.split("."):
        if isinstance(spec, Table):
            spec = spec.entry
        elif isinstance(spec, Section):
            spec = spec.fields.get(part)
        else:
            return None
    return spec
