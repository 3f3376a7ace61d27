"""Config-driven sweeps: expand axes into points, run them batched and resumable, plot them.

A sweep config file defines `get_config(arg)` (the base ConfigDict) and `get_sweep(arg)`
(the axes), in the spirit of big_vision's config/hyper files:

    def get_sweep(arg=None):
      return product(sweep('layer', ['Alex-7', 'VGG-7']), sweep('eie.fifo_depth', [1, 8]))

The expander turns the axes into a list of override sets ({'layer': 'Alex-7',
'eie.fifo_depth': 1}, ...), each checked against the base config. `run_sweep` then runs
every point not already in DIR/results.jsonl:

- `config.runner == 'eie'`: EIE design points (Han et al., ISCA 2016, Sec. VI: FIFO depth,
  PE count, index width). Entry counts are computed once per (layer, num_pes, index_bits)
  on the host; points are grouped by padded shape and every group is one compiled call of
  `eie.cycles_from_counts` vmapped over the points, its batch axis sharded over the local
  devices with a jax.sharding Mesh.
- `config.runner == 'train'`: one training run per point, one after another, through the
  function named by `config.train_fn` (`train_fn(config[, workdir]) -> metrics`).

Each finished point is appended to DIR/results.jsonl as {"index", "overrides", "metrics"}
and flushed; DIR/sweep_config.json holds the config and points with a fingerprint, so a
rerun skips finished points and a changed config is refused. `plot_sweep` draws the PNG
figures the config declares in `config.plots`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from eie_jax import eie
from eie_jax.eie import benchmarks

RESULTS_FILE = "results.jsonl"
SWEEP_FILE = "sweep_config.json"
# Fields that change how results look, not what they are: excluded from the fingerprint.
PRESENTATION_FIELDS = ("plots",)
# EIE's column pointers are 16 bits wide (ISCA 2016, Sec. III-B).
POINTER_BITS = 16
RUNNERS = ("eie", "train")
# Points whose broadcast counts share floor(log2(K - 1) / K_CLASS_BITS) share a compiled call.
K_CLASS_BITS = 2

Overrides = dict[str, Any]


# ----------------------------------------------------------------------------- expander


def sweep(field: str, values: Sequence[Any]) -> list[Overrides]:
    """One axis: [{field: v} for v in values]."""
    if not isinstance(field, str) or not field:
        raise ValueError(f"sweep field={field!r}: must be a non-empty dotted name")
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"sweep({field!r}) values={values!r}: must be a list of values")
    return [{field: v} for v in values]


def product(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Cartesian product of axes; the last axis varies fastest."""
    return [_merge(combo, "product") for combo in itertools.product(*axes)]


def zip_(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Axes side by side: point i merges the i-th entry of every axis (equal lengths)."""
    lengths = [len(axis) for axis in axes]
    if len(set(lengths)) > 1:
        raise ValueError(f"zip_: axes must have equal lengths, got {lengths}")
    return [_merge(combo, "zip_") for combo in zip(*axes, strict=True)]


def _merge(parts: Sequence[Overrides], how: str) -> Overrides:
    merged: Overrides = {}
    for part in parts:
        for field, value in part.items():
            if field in merged:
                raise ValueError(f"{how}: field {field!r} appears in more than one axis")
            merged[field] = value
    return merged


def expand(config: ml_collections.ConfigDict, axes: Sequence[Overrides]) -> list[Overrides]:
    """Checks every override set against `config` and returns them as a list of points.

    Raises ValueError naming the field when a field does not exist in the config, and when
    two points are identical (their results could not be told apart).
    """
    points = [dict(point) for point in axes]
    seen = {}
    for i, point in enumerate(points):
        for field in point:
            _lookup(config, field)
        key = point_key(point)
        if key in seen:
            raise ValueError(f"sweep points {seen[key]} and {i} are identical: {point}")
        seen[key] = i
    return points


def _lookup(config: ml_collections.ConfigDict, field: str):
    """The value at a dotted field, or ValueError naming the field and what exists there."""
    node = config
    parts = field.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict | Mapping) or part not in node:
            where = ".".join(parts[:depth]) or "<root>"
            have = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            raise ValueError(
                f"sweep field {field!r}: no field {part!r} under {where} of the config; "
                f"fields there: {have}"
            )
        node = node[part]
    return node


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` with each dotted field set to its override value."""
    config = copy.deepcopy(config)
    for field, value in overrides.items():
        _lookup(config, field)
        *parents, leaf = field.split(".")
        node = config
        for part in parents:
            node = node[part]
        try:
            node[leaf] = value
        except TypeError as e:  # ConfigDict refuses a value of another type
            raise ValueError(f"sweep field {field!r}={value!r}: {e}") from e
    return config


def point_key(overrides: Mapping[str, Any]) -> str:
    """A canonical string for one point, used to recognise finished points."""
    return json.dumps(_jsonable(dict(overrides)), sort_keys=True)


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
        raise ValueError(f"config file {path!r}: defines no get_sweep(); it is not a sweep")
    return list(module.get_sweep(*((arg,) if arg else ())))


def _load_module(path: str):
    if not os.path.exists(path):
        raise ValueError(f"config file {path!r}: not found")
    spec = importlib.util.spec_from_file_location(f"sweep_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- results


class ResultStore:
    """DIR/results.jsonl (one JSON line per finished point) and DIR/sweep_config.json.

    `open` writes the fingerprint on a fresh directory, and on a directory that already
    holds a sweep checks that it is the same sweep, so results are never mixed.
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.results_path = os.path.join(workdir, RESULTS_FILE)
        self.sweep_path = os.path.join(workdir, SWEEP_FILE)

    def open(self, config: ml_collections.ConfigDict, points: Sequence[Overrides]):
        """Records or checks the sweep; returns {point key: record} of finished points."""
        os.makedirs(self.workdir, exist_ok=True)
        config_dict = _jsonable(config.to_dict())
        identity = {k: v for k, v in config_dict.items() if k not in PRESENTATION_FIELDS}
        points = [_jsonable(p) for p in points]
        fingerprint = _fingerprint({"config": identity, "points": points})
        meta = {
            "fingerprint": fingerprint,
            "num_points": len(points),
            "config": config_dict,
            "points": points,
        }
        if os.path.exists(self.sweep_path):
            with open(self.sweep_path) as f:
                old = json.load(f)
            if old.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"workdir {self.workdir!r} holds results of a different sweep "
                    f"({_describe_change(old, identity, points)}); use a fresh --workdir "
                    f"or delete {self.workdir!r} to start over"
                )
        # Rewritten each time so that presentation fields (plots) follow the config.
        _write_json_atomic(self.sweep_path, meta)
        return {point_key(r["overrides"]): r for r in self.records()}

    def records(self) -> list[dict]:
        """Finished points; a line cut short by an interruption is dropped from the file."""
        if not os.path.exists(self.results_path):
            return []
        with open(self.results_path, "rb") as f:
            data = f.read()
        complete, _, partial = data.rpartition(b"\n")
        if partial:
            # The process died mid-line: drop the fragment so the next append starts clean.
            logging.warning("%s: dropping a partial last line", self.results_path)
            with open(self.results_path, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        records, seen = [], set()
        for n, line in enumerate(complete.decode().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.results_path}:{n}: not a JSON line ({e})") from e
            key = point_key(record["overrides"])
            if key not in seen:
                seen.add(key)
                records.append(record)
        return records

    def append(self, records: Sequence[dict]):
        """Appends finished points and forces them to disk before returning."""
        with open(self.results_path, "a") as f:
            for record in records:
                f.write(json.dumps(_jsonable(record), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def load_results(workdir: str) -> list[dict]:
    """All finished points of the sweep in `workdir`, in point order."""
    return sorted(ResultStore(workdir).records(), key=lambda r: r["index"])


def load_sweep_meta(workdir: str) -> dict:
    path = os.path.join(workdir, SWEEP_FILE)
    if not os.path.exists(path):
        raise ValueError(f"workdir {workdir!r}: no {SWEEP_FILE}; run experiments.sweep first")
    with open(path) as f:
        return json.load(f)


def _describe_change(old: dict, identity: dict, points: list) -> str:
    old_identity = {k: v for k, v in old.get("config", {}).items() if k not in PRESENTATION_FIELDS}
    a, b = _flatten(old_identity), _flatten(identity)
    changed = [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k, "<absent>") != b.get(k, "<absent>")
    ]
    if old.get("points") != points:
        changed.append(f"points: {old.get('num_points')} -> {len(points)} (or their values)")
    return "changed " + "; ".join(changed[:6]) if changed else "fingerprint differs"


def _flatten(tree, prefix=""):
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _write_json_atomic(path: str, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _jsonable(value):
    """Plain JSON values from ConfigDicts, dataclasses, NumPy and JAX scalars and arrays."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class Progress:
    """A progress line: points done / total, rate over this run, and the time left."""

    def __init__(self, total: int, done: int = 0, log: Callable[[str], None] | None = None):
        self.total, self.done, self.start_done = total, done, done
        self.start = time.perf_counter()
        self.log = log or (lambda msg: logging.info("%s", msg))

    def update(self, n: int):
        self.done += n
        self.log(self.line())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        new = self.done - self.start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.1f}s" if rate > 0 else "?"
        pct = 100.0 * self.done / max(self.total, 1)
        return (
            f"sweep: {self.done}/{self.total} points ({pct:.0f}%), "
            f"{rate:.1f} points/s, elapsed {elapsed:.1f}s, ETA {eta}"
        )


# ----------------------------------------------------------------------------- driver


def run_sweep(
    config: ml_collections.ConfigDict,
    axes: Sequence[Overrides],
    workdir: str,
    *,
    devices: Sequence[jax.Device] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Runs every point of the sweep not already in workdir; returns all records.

    Raises ValueError for an unknown runner or field, an invalid point, or a workdir that
    holds another sweep.
    """
    runner = config.get("runner", None)
    if runner not in RUNNERS:
        raise ValueError(f"config.runner={runner!r}: must be one of {RUNNERS}")
    points = expand(config, axes)
    store = ResultStore(workdir)
    done = store.open(config, points)
    pending = [(i, p) for i, p in enumerate(points) if point_key(p) not in done]
    progress = Progress(len(points), len(points) - len(pending), log)
    (log or logging.info)(
        f"sweep: {len(points)} points, {len(points) - len(pending)} already done, "
        f"runner {runner!r}, workdir {workdir}"
    )
    if pending:
        if runner == "eie":
            _run_eie_points(config, pending, store, progress, devices)
        else:
            _run_training_points(config, pending, store, progress)
    return load_results(workdir)


# ----------------------------------------------------------------------------- EIE points


def eie_base_config(arg=None, **eie_fields) -> ml_collections.ConfigDict:
    """Base config of an EIE design-point sweep: one Table III layer on one EIEConfig.

    Fields: layer (a Table III name), seed (of the synthetic layer), layer_scale (shrinks
    both dimensions, for smoke runs), counts_from ('counts': entry_counts, or 'encode':
    eie.encode), eie (the EIEConfig fields, eie_fields overriding the defaults),
    max_batch_elements (int32 counts per compiled call), plots. arg='smoke' shrinks the
    layers to 5 % of each dimension.
    """
    if arg not in (None, "smoke"):
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    config = ml_collections.ConfigDict()
    config.runner = "eie"
    config.layer = "Alex-7"
    config.seed = 0
    config.layer_scale = 1.0
    config.counts_from = "counts"
    config.eie = ml_collections.ConfigDict(dataclasses.asdict(eie.EIEConfig()))
    config.eie.update(eie_fields)
    config.max_batch_elements = 1 << 25
    config.plots = []
    if arg == "smoke":
        config.layer_scale = 0.05
    return config


def table_iii_sweep(
    field: str, values, arg=None, *, smoke_values, smoke_layers=("Alex-7", "NT-We")
):
    """The nine EIE Table III layers x values of one field (two layers, fewer values for smoke)."""
    layers = [spec.name for spec in benchmarks.TABLE_III]
    if arg == "smoke":
        layers, values = list(smoke_layers), smoke_values
    return product(sweep("layer", layers), sweep(field, list(values)))


def eie_config_of(config: ml_collections.ConfigDict) -> eie.EIEConfig:
    """The validated EIEConfig of one point (ValueError names the bad field)."""
    return eie.EIEConfig(**config.eie.to_dict())


def entry_counts(rows, cols, shape: tuple[int, int], num_pes: int, index_bits: int):
    """EIE's entries per PE and column, padding included: `eie.encode(...).counts`.

    The count alone, without building the streams (ISCA 2016, Sec. III-B): row r goes to PE
    r mod N as local row r // N; a gap of g zero local rows before an entry of a PE's
    column costs floor(g / 2**index_bits) padding entries. rows, cols: the nonzeros of W
    (np.nonzero). Returns (counts (N, K) int32, num_padding).
    """
    m, k = shape
    n = num_pes
    r = -(-m // n)
    dtype = np.int32 if k * n * r < 2**31 else np.int64
    rows, cols = rows.astype(dtype), cols.astype(dtype)
    slice_id = cols * n + rows % n  # (column, PE) slices, column-major
    counts = np.bincount(slice_id, minlength=n * k)
    padding = 0
    if r > (1 << index_bits):  # otherwise no gap can reach 2**index_bits rows
        # One sort by (column, PE, local row) replaces encode's dense (N, K, R) transpose.
        key = np.sort(slice_id * r + rows // n)
        ids = key // r
        local = key - ids * r
        gap = np.empty_like(local)
        gap[0] = local[0] if len(local) else 0
        gap[1:] = np.where(ids[1:] == ids[:-1], local[1:] - local[:-1] - 1, local[1:])
        pads = gap >> index_bits
        has = pads > 0
        counts = counts + np.bincount(ids[has], weights=pads[has], minlength=n * k).astype(
            counts.dtype
        )
        padding = int(pads.sum())
    return counts.reshape(k, n).T.astype(np.int32), padding


@dataclasses.dataclass(frozen=True)
class _EIEPoint:
    """Host-side inputs of one design point: counts over its broadcast columns only."""

    cfg: eie.EIEConfig
    counts: np.ndarray  # (N, K_active)
    num_entries: int
    num_padding: int
    real_active: int  # real (unpadded) entries in broadcast columns
    shape: tuple[int, int]


class _EIEHost:
    """Caches synthetic layers and entry counts so each (layer, N, index_bits) is done once."""

    def __init__(self):
        self.layers = {}
        self.counts = {}
        self.active = {}

    def point(self, config: ml_collections.ConfigDict) -> _EIEPoint:
        cfg = eie_config_of(config)
        if not config.layer_scale > 0:
            raise ValueError(f"config.layer_scale={config.layer_scale!r}: must be > 0")
        if config.counts_from not in ("counts", "encode"):
            raise ValueError(
                f"config.counts_from={config.counts_from!r}: must be 'counts' or 'encode'"
            )
        layer_key = (config.layer, config.seed, config.layer_scale, cfg.weight_bits)
        if layer_key not in self.layers:
            spec = benchmarks.get_spec(config.layer)
            scale = config.layer_scale
            spec = dataclasses.replace(
                spec,
                in_features=max(1, round(spec.in_features * scale)),
                out_features=max(1, round(spec.out_features * scale)),
            )
            codes, codebook, x = benchmarks.synthetic_layer(spec, config.seed, cfg)
            rows, cols = (a.astype(np.int32) for a in np.nonzero(codes))
            self.layers[layer_key] = (codes, codebook, x, rows, cols)
        codes, codebook, x, rows, cols = self.layers[layer_key]
        count_key = (layer_key, cfg.num_pes, cfg.index_bits, config.counts_from)
        if count_key not in self.counts:
            if config.counts_from == "encode":
                layer = eie.encode(codes, codebook, cfg)
                self.counts[count_key] = (np.asarray(layer.counts), layer.num_padding)
            else:
                self.counts[count_key] = entry_counts(
                    rows, cols, codes.shape, cfg.num_pes, cfg.index_bits
                )
        counts, num_padding = self.counts[count_key]
        active_key = (layer_key, cfg.act_frac_bits)
        if active_key not in self.active:
            # Broadcast iff the quantised activation is nonzero (the LNZD skips the rest).
            # fixed_point.quantize in NumPy (float32, round half to even): no device call.
            active = np.round(np.float32(x) * np.float32(1 << cfg.act_frac_bits)) != 0
            per_col = np.bincount(cols, minlength=codes.shape[1])
            self.active[active_key] = (active, int(per_col[active].sum()))
        active, real_active = self.active[active_key]
        return _EIEPoint(
            cfg=cfg,
            counts=counts[:, active],
            num_entries=int(counts.sum()),
            num_padding=num_padding,
            real_active=real_active,
            shape=codes.shape,
        )


def eie_metrics(point: _EIEPoint, pe_cycles, pe_busy) -> dict:
    """The metrics of one design point (ISCA 2016, Sec. VI and Figs. 8, 11-13).

    total_cycles = max_k pe_cycles; load_efficiency = mean(pe_busy) / total_cycles;
    real_work_ratio = real entries / all entries processed (padding is the difference);
    storage_bits = entries * (weight_bits + index_bits) + N * (K + 1) * 16-bit pointers.
    """
    cfg = point.cfg
    total = int(np.max(pe_cycles, initial=0))
    busy = int(np.sum(pe_busy))
    return {
        "total_cycles": total,
        "time_us": total / cfg.clock_mhz,
        "load_efficiency": float(np.mean(pe_busy) / total) if total > 0 else 0.0,
        "busy_entries": busy,
        "real_work_ratio": point.real_active / busy if busy > 0 else 1.0,
        "num_entries": point.num_entries,
        "num_padding": point.num_padding,
        "padding_share": point.num_padding / max(point.num_entries, 1),
        "storage_bits": point.num_entries * (cfg.weight_bits + cfg.index_bits)
        + cfg.num_pes * (point.shape[1] + 1) * POINTER_BITS,
        "broadcasts": int(point.counts.shape[1]),
    }


@functools.partial(jax.jit, static_argnames=("history",))
def batched_cycles(counts, num_cols, fifo_depth, *, history: int):
    """eie.cycles_from_counts vmapped over design points.

    counts (B, N, K): entries per PE in each broadcast column, zero-padded; num_cols (B,):
    the real columns of each point (the rest are inactive, so they change nothing);
    fifo_depth (B,) <= history. Returns (pe_cycles, pe_busy), each (B, N).
    """
    active = jnp.arange(counts.shape[-1])[None, :] < num_cols[:, None]
    run = functools.partial(eie.cycles_from_counts, history=history)
    return jax.vmap(run)(counts, active, fifo_depth)


def iter_cycles(
    counts: Sequence[np.ndarray],
    fifo_depths: Sequence[int],
    *,
    devices: Sequence[jax.Device] | None = None,
    max_batch_elements: int = 1 << 25,
) -> Iterator[tuple[list[int], list[np.ndarray], list[np.ndarray]]]:
    """Per-PE cycles of many design points, one compiled call per padded shape.

    counts[i] (N_i, K_i) holds design point i's entries per PE in each *broadcast* column;
    fifo_depths[i] its queue depth. Points are grouped by K class (log2 K_i in steps of
    K_CLASS_BITS); a group pads N, K and the batch to common sizes and runs as chunks of one
    shape, the batch axis sharded over `devices` (default: jax.devices()). Zero-count PEs
    added by padding finish no later than the real ones, so they change neither the
    broadcast stalls nor the maximum. Yields (indices, pe_cycles, pe_busy) per chunk, each
    array trimmed to the point's N.
    """
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("points",))
    sharding = NamedSharding(mesh, PartitionSpec("points"))
    ndev = len(devices)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        # Classes a factor of 4 wide: each compile costs about a second on CPU, so fewer
        # groups beat tighter padding (the loop runs to the group's longest point).
        groups.setdefault(max(c.shape[1] - 1, 0).bit_length() // K_CLASS_BITS, []).append(i)
    for _, members in sorted(groups.items()):
        n_pad = max(counts[i].shape[0] for i in members)
        k_pad = max(_round_up(max(counts[i].shape[1] for i in members), 128), 128)
        history = eie.history_size(max(fifo_depths[i] for i in members))
        per_chunk = max(1, max_batch_elements // (n_pad * k_pad))
        per_chunk = _round_up(min(per_chunk, len(members)), ndev)
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            batch = np.zeros((per_chunk, n_pad, k_pad), np.int32)
            num_cols = np.zeros(per_chunk, np.int32)
            # Batch padding repeats a real depth; its results are dropped.
            depth = np.full(per_chunk, fifo_depths[chunk[0]], np.int32)
            for b, i in enumerate(chunk):
                n, k = counts[i].shape
                batch[b, :n, :k] = counts[i]
                num_cols[b] = k
                depth[b] = fifo_depths[i]
            args = jax.device_put((batch, num_cols, depth), sharding)
            cycles, busy = jax.device_get(batched_cycles(*args, history=history))
            yield (
                chunk,
                [cycles[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
                [busy[b, : counts[i].shape[0]] for b, i in enumerate(chunk)],
            )


def evaluate_cycles(counts, fifo_depths, **kwargs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """iter_cycles collected: (pe_cycles, pe_busy) lists in point order."""
    cycles, busy = [None] * len(counts), [None] * len(counts)
    for chunk, c, b in iter_cycles(counts, fifo_depths, **kwargs):
        for j, i in enumerate(chunk):
            cycles[i], busy[i] = c[j], b[j]
    return cycles, busy


def prepare_eie_points(
    config: ml_collections.ConfigDict, points: Sequence[Overrides]
) -> list[_EIEPoint]:
    """Host inputs of each point (validated; counts computed once per layer and N)."""
    host = _EIEHost()
    return [host.point(apply_overrides(config, p)) for p in points]


def _run_eie_points(config, pending, store: ResultStore, progress: Progress, devices):
    prepared = prepare_eie_points(config, [p for _, p in pending])
    for chunk, cycles, busy in iter_cycles(
        [p.counts for p in prepared],
        [p.cfg.fifo_depth for p in prepared],
        devices=devices,
        max_batch_elements=config.max_batch_elements,
    ):
        records = []
        for j, i in enumerate(chunk):
            index, overrides = pending[i]
            metrics = eie_metrics(prepared[i], cycles[j], busy[j])
            records.append({"index": index, "overrides": overrides, "metrics": metrics})
        store.append(records)
        progress.update(len(records))


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


# ----------------------------------------------------------------------------- training points


def resolve_fn(path: str) -> Callable:
    """The function named by 'package.module.fn' or 'package.module:fn'."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"config.train_fn={path!r}: cannot import {module_name!r} ({e})") from e
    if not callable(getattr(module, attr, None)):
        raise ValueError(f"config.train_fn={path!r}: {module_name!r} has no function {attr!r}")
    return getattr(module, attr)


def _run_training_points(config, pending, store: ResultStore, progress: Progress):
    train_fn = resolve_fn(config.train_fn)
    takes_workdir = "workdir" in inspect.signature(train_fn).parameters
    configs = [(i, p, apply_overrides(config, p)) for i, p in pending]  # validate all first
    for index, overrides, point_config in configs:
        kwargs = {}
        if takes_workdir:
            kwargs["workdir"] = os.path.join(store.workdir, "points", f"{index:05d}")
        metrics = train_fn(point_config, **kwargs)
        store.append([{"index": index, "overrides": overrides, "metrics": metrics}])
        progress.update(1)


# ----------------------------------------------------------------------------- plots

PLOT_KEYS = ("x", "y", "series", "name", "title", "xlabel", "ylabel", "logx", "logy")
PLOT_KEYS += ("transform", "ref_x")
TRANSFORMS = (None, "speedup", "relative")


def plot_sweep(workdir: str, plots: Sequence[Mapping] | None = None) -> list[str]:
    """Draws each figure declared in the sweep's `config.plots` as DIR/<name>.

    A plot spec: x, y (an overridden field or a metric), series (optional field that
    splits lines), name (the PNG file), title/xlabel/ylabel, logx/logy (base 2 / 10), and
    transform: 'speedup' plots y(ref_x) / y, 'relative' y / y(ref_x), per series (ref_x:
    default the smallest x). Returns the paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = load_sweep_meta(workdir)
    plots = meta["config"].get("plots", []) if plots is None else plots
    records = load_results(workdir)
    paths = []
    for spec in plots:
        spec = dict(spec)
        _check_plot(spec)
        lines: dict[Any, list[tuple[Any, float]]] = {}
        for record in records:
            series = _value(record, spec["series"]) if spec.get("series") else None
            lines.setdefault(series, []).append(
                (_value(record, spec["x"]), float(_value(record, spec["y"])))
            )
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for series, xy in lines.items():
            xy.sort(key=lambda p: p[0])
            xs, ys = [p[0] for p in xy], np.asarray([p[1] for p in xy])
            ys = _transform(spec, xs, ys)
            ax.plot(xs, ys, marker="o", markersize=3, label=None if series is None else series)
        if spec.get("logx"):
            ax.set_xscale("log", base=2)
        if spec.get("logy"):
            ax.set_yscale("log")
        ax.set_xlabel(spec.get("xlabel") or spec["x"])
        ax.set_ylabel(spec.get("ylabel") or _default_ylabel(spec))
        if spec.get("title"):
            ax.set_title(spec["title"])
        if len(lines) > 1 or None not in lines:
            ax.legend(fontsize=7, ncol=2)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path = os.path.join(workdir, spec["name"])
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _check_plot(spec: dict):
    for key in spec:
        if key not in PLOT_KEYS:
            raise ValueError(f"plot key {key!r}: unknown; allowed: {PLOT_KEYS}")
    for key in ("x", "y", "name"):
        if not spec.get(key):
            raise ValueError(f"plot {spec}: missing {key!r}")
    if not spec["name"].endswith(".png"):
        raise ValueError(f"plot name={spec['name']!r}: must end with .png")
    if spec.get("transform") not in TRANSFORMS:
        raise ValueError(f"plot transform={spec.get('transform')!r}: must be one of {TRANSFORMS}")


def _value(record: dict, name: str):
    if name in record["overrides"]:
        return record["overrides"][name]
    if name in record["metrics"]:
        return record["metrics"][name]
    raise ValueError(
        f"plot field {name!r}: neither an overridden field {sorted(record['overrides'])} "
        f"nor a metric {sorted(record['metrics'])}"
    )


def _transform(spec: dict, xs: list, ys: np.ndarray) -> np.ndarray:
    if not spec.get("transform"):
        return ys
    ref_x = spec.get("ref_x", xs[0])
    if ref_x not in xs:
        raise ValueError(f"plot ref_x={ref_x!r}: not among the x values {xs}")
    ref = ys[xs.index(ref_x)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return ref / ys if spec["transform"] == "speedup" else ys / ref


def _default_ylabel(spec: dict) -> str:
    if spec.get("transform") == "speedup":
        return f"speedup ({spec['y']} at {spec['x']}={spec.get('ref_x', 'min')} / {spec['y']})"
    if spec.get("transform") == "relative":
        return f"{spec['y']} relative to {spec['x']}={spec.get('ref_x', 'min')}"
    return spec["y"]
