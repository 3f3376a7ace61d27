"""Workdirs: the one resume check, the one lock and the one config-override merger.

Every entry point that writes into a --workdir goes through `session`:

    with workdir.session(path, "compress", config):   # lock, kind of run, config check
        ...                                           # resume what is there

- `fingerprint(value)`: a short hash of a JSON value, to key results by what they depend on.
- `check_same_config(path, value, filename)`: writes PATH/FILENAME atomically on a fresh
  workdir, or raises a UserError naming the fields that differ from the recorded ones.
- `lock(path, process_id)`: an exclusive `fcntl.flock` on PATH/.lock (process 0, which
  every run has) or PATH/.lock.<id> (the other processes of a multi-process sweep); a killed
  process releases it.
- `apply_overrides(config, overrides, where)`: a copy of a ConfigDict with dotted or nested
  overrides written in, a UserError naming the field when it does not exist or has the
  wrong type.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import ml_collections
import numpy as np

from eie_jax.utils.cli import UserError

LOCK_FILE = ".lock"


def jsonable(value):
    """Plain JSON values from ConfigDicts, dataclasses, NumPy/JAX scalars and arrays."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic) or type(value).__module__.startswith("jax"):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def fingerprint(value, length: int = 16) -> str:
    """The first `length` hex digits of the SHA-256 of `value` as sorted-key JSON."""
    return hashlib.sha256(json.dumps(jsonable(value), sort_keys=True).encode()).hexdigest()[:length]


def write_json_atomic(path: str, value, indent: int = 1):
    """Writes `value` as JSON through a temporary file, so a reader never sees half of it.

    A write that fails (a full disk, Ctrl-C) leaves PATH as it was and no temporary file;
    the disk's refusal is an OSError naming PATH (`errors.run_main` makes it one line).
    """
    tmp = f"{path}.{os.getpid()}.tmp"  # processes sharing a workdir write side by side
    try:
        with open(tmp, "w") as f:
            json.dump(jsonable(value), f, indent=indent, sort_keys=True)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename != path:
            raise OSError(e.errno, e.strerror, path) from e
        raise


def make(path: str) -> str:
    """Creates the workdir (and its parents), or a UserError saying why it cannot be."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f"--workdir={path}: cannot create it ({e.strerror}); pick another") from e
    if not os.access(path, os.W_OK):
        raise UserError(f"--workdir={path}: not writable; pick another")
    return path


def changed_fields(old, new, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted field, old value, new value) where two JSON trees differ; ABSENT stands for
    the value of a field one side lacks."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from changed_fields(old.get(key, ABSENT), new.get(key, ABSENT), f"{prefix}{key}.")
    elif old != new:
        yield prefix.rstrip("."), old, new


def differences(old, new) -> Iterator[str]:
    """Dotted fields where two JSON trees differ, with both values: 'a.b: 1 -> 2'."""
    for field, was, now in changed_fields(old, new):
        yield f"{field}: {_short(was)} -> {_short(now)}"


ABSENT = "<absent>"


def _short(value, limit: int = 40) -> str:
    text = repr(value) if value is not ABSENT else ABSENT
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_differences(old, new, ignore=()) -> list[str]:
    """`differences` of two JSON trees, leaving out the dotted fields `ignore`."""
    return list(differences(_drop(jsonable(old), ignore), _drop(jsonable(new), ignore)))


def _drop(tree: dict, fields) -> dict:
    """A copy of a JSON tree without the dotted `fields`."""
    tree = copy.deepcopy(tree)
    for field in fields:
        *parents, leaf = field.split(".")
        node = tree
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return tree


def check_same_config(path: str, value, filename: str = "config.json", *, ignore=()) -> None:
    """Records `value` in PATH/FILENAME, or refuses a workdir made with another one.

    value: the config (a ConfigDict or a JSON-able tree). ignore: dotted fields that do not
    change the results (plot specs, say): they may differ, and the file is rewritten with
    the new ones. Raises UserError naming the fields that differ and what to do.
    """
    current = jsonable(value)
    file = os.path.join(path, filename)
    if os.path.exists(file):
        try:
            with open(file) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(
                f"{file}: unreadable ({e}); delete it (and the results beside it) to start over"
            ) from e
        changed = config_differences(saved, current, ignore)
        if changed:
            more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
            raise UserError(
                f"--workdir={path} holds results of another config ({filename} differs: "
                f"{'; '.join(changed[:4])}{more}); use a new --workdir or delete that one"
            )
    make(path)
    write_json_atomic(file, current)


@contextlib.contextmanager
def lock(path: str, process_id: int = 0):
    """Holds an exclusive lock on the workdir; a second holder gets a one-line UserError.

    fcntl.flock on PATH/.lock: the kernel drops it when the process exits or is killed, so a
    crashed run never leaves a stale lock. The file records the holder's pid for the message.
    Processes of one multi-process run (jax.distributed) share the workdir: process 0 holds
    PATH/.lock, which refuses any other run (each has a process 0), and process i > 0 holds
    PATH/.lock.<i>, which refuses a second process with its id (they would write one file).
    """
    make(path)
    file = os.path.join(path, LOCK_FILE if process_id == 0 else f"{LOCK_FILE}.{process_id}")
    who = "another process" if process_id == 0 else f"another process {process_id}"
    with open(file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise UserError(
                f"--workdir={path} is in use by {who} (pid {holder}); wait for it to "
                "finish or use another --workdir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


KIND_FILE = "workdir.json"


def check_kind(path: str, kind: str) -> None:
    """Records which kind of run a workdir holds (PATH/workdir.json), or refuses one that
    holds another kind's results: a compression run's workdir is not a sweep's."""
    file = os.path.join(path, KIND_FILE)
    if os.path.exists(file):
        try:
            with open(file, encoding="utf-8") as f:
                held = json.load(f)["kind"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{file}: damaged ({e}); delete it if this is a {kind} run's") from e
        if held != kind:
            raise UserError(
                f"--workdir={path} holds a {held} run's results, not a {kind} run's; use "
                "another --workdir"
            )
        return
    write_json_atomic(file, {"kind": kind})


@contextlib.contextmanager
def session(path: str, kind: str, config=None, filename: str = "config.json", *, ignore=(),
            process_id: int = 0):  # fmt: skip
    """The one way an entry point opens its --workdir: the lock (a second run is refused),
    the kind of run it holds (`check_kind`) and, when `config` is given, the config check
    (`check_same_config` on PATH/FILENAME): resume what is there, or a one-line refusal."""
    with lock(path, process_id):
        if process_id == 0:
            check_kind(path, kind)
        if config is not None:
            check_same_config(path, config, filename, ignore=ignore)
        yield path


# ------------------------------------------------------------------ overrides


def lookup(config: ml_collections.ConfigDict, field: str, where: str = "config"):
    """The value at a dotted field, or a UserError naming the field and what exists there."""
    node = config
    parts = field.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict | Mapping) or part not in node:
            at = ".".join(parts[:depth])
            have = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            raise UserError(
                f"{where}.{field}: no field {part!r} under {where}{'.' + at if at else ''}; "
                f"fields there: {have}"
            )
        node = node[part]
    return node


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str = "config"
) -> ml_collections.ConfigDict:
    """A copy of `config` with every override written in, field by field.

    overrides: {field: value}, a field dotted ('eie.fifo_depth') or not; a Mapping value
    for a ConfigDict field is merged into it (fields it does not name keep their values).
    where: how the caller names `overrides` in error messages. Raises UserError naming
    `where.field` for a field the config lacks or a value of the wrong type.
    """
    config = copy.deepcopy(config)
    _write(config, overrides, where)
    return config


def _write(node: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str):
    items = overrides.items()  # a Mapping or a ConfigDict
    for field, value in list(items):
        lookup(node, str(field), where)
        *parents, leaf = str(field).split(".")
        parent = node
        for part in parents:
            parent = parent[part]
        name = f"{where}.{field}"
        nested = isinstance(value, Mapping | ml_collections.ConfigDict)
        if isinstance(parent[leaf], ml_collections.ConfigDict) and nested:
            _write(parent[leaf], value, name)
            continue
        try:
            parent[leaf] = value
        except (TypeError, ValueError) as e:  # ConfigDict refuses a value of another type
            raise UserError(f"{name}={value!r}: {e}") from e
