"""A sweep's workdir: DIR/results.<process>.jsonl (one line per finished point), its config.

Process i of a sweep (0 when it runs alone) appends each point it finishes to its own
DIR/results.<i>.jsonl as {"index", "overrides", "metrics"} and flushes it; the reader
merges every results.*.jsonl (and a results.jsonl of older versions), so a point finished
by any process, under any number of processes, counts as done. DIR/sweep_config.json
records the config and the points (`workdir.check_same_config`), so a rerun skips finished
points and a changed config is refused, naming the fields that changed. A damaged line of a
results file (not UTF-8, not JSON, or not such a record) is refused as path:line, the file
left as it is; only a partial last line, cut short by a crash, is dropped.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable, Sequence

import ml_collections
from absl import logging

from eie_jax.sweep.axes import Overrides, point_key
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError

RESULTS_FILE = "results.{process}.jsonl"
LEGACY_RESULTS_FILE = "results.jsonl"  # one process, before multi-process sweeps
SWEEP_FILE = "sweep_config.json"
RECORD_KEYS = ("index", "overrides", "metrics")  # of each line of a results file
# Fields that change how results look, not what they are: they may change between runs.
PRESENTATION_FIELDS = ("plots",)


def results_files(workdir: str) -> list[str]:
    """Every results file in the workdir: the legacy one first, then by process id."""
    found = glob.glob(os.path.join(glob.escape(workdir), RESULTS_FILE.format(process="*")))
    numbered = []
    for path in found:
        middle = os.path.basename(path)[len("results.") : -len(".jsonl")]
        if middle.isdigit():
            numbered.append((int(middle), path))
    legacy = os.path.join(workdir, LEGACY_RESULTS_FILE)
    return [legacy] * os.path.exists(legacy) + [path for _, path in sorted(numbered)]


class ResultStore:
    """DIR/results.<process>.jsonl (this process's) and DIR/sweep_config.json of one sweep.

    process: the id of the process that appends; None for a reader, which writes nothing.
    """

    def __init__(self, workdir: str, process: int | None = None):
        self.workdir = workdir
        self.results_path = None
        if process is not None:
            self.results_path = os.path.join(workdir, RESULTS_FILE.format(process=process))
        self.sweep_path = os.path.join(workdir, SWEEP_FILE)

    def open(self, config: ml_collections.ConfigDict, points: Sequence[Overrides]):
        """Records or checks the sweep; returns {point key: record} of finished points.

        Raises UserError when the workdir holds another sweep (other config or points).
        """
        config_dict = workdirs.jsonable(config.to_dict())
        identity = {k: v for k, v in config_dict.items() if k not in PRESENTATION_FIELDS}
        points = workdirs.jsonable(list(points))
        meta = {
            "fingerprint": workdirs.fingerprint({"config": identity, "points": points}),
            "num_points": len(points),
            "config": config_dict,
            "points": points,
        }
        # Rewritten each time so that presentation fields (plots) follow the config.
        ignore = ["fingerprint"] + [f"config.{field}" for field in PRESENTATION_FIELDS]
        workdirs.check_same_config(self.workdir, meta, SWEEP_FILE, ignore=ignore)
        return {point_key(r["overrides"]): r for r in self.records()}

    def records(self) -> list[dict]:
        """Finished points of every process, each point once (the first record of it).

        A line cut short by an interruption is dropped: from this process's file (so the
        next append starts clean), and ignored in another's (that process may be writing it).
        """
        records, seen = [], set()
        for path in results_files(self.workdir):
            for record in self._read(path, own=path == self.results_path):
                key = point_key(record["overrides"])
                if key not in seen:
                    seen.add(key)
                    records.append(record)
        return records

    def _read(self, path: str, own: bool) -> list[dict]:
        """The records of one results file; UserError naming path:line at a damaged line,
        before anything in the file is changed."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UserError(f"{path}: cannot read it ({e.strerror}); fix or move it away") from e
        complete, _, partial = data.rpartition(b"\n")
        records = [
            _parse_record(raw, f"{path}:{n}")
            for n, raw in enumerate(complete.split(b"\n") if complete else [], 1)
            if raw.strip()
        ]
        if partial and own:
            # The process died mid-line: drop the fragment so the next append starts clean.
            logging.warning("%s: dropping a partial last line", path)
            with open(path, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        return records

    def append(self, records: Sequence[dict]):
        """Appends finished points and forces them to disk before returning."""
        if self.results_path is None:
            raise ValueError("ResultStore(process=None) is a reader; it appends nothing")
        with open(self.results_path, "a") as f:
            for record in records:
                f.write(json.dumps(workdirs.jsonable(record), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _parse_record(raw: bytes, where: str) -> dict:
    """One line of a results file as its record; UserError naming `where` (path:line),
    what is wrong and what to do when it is not one (the file is left as it is)."""
    fix = "delete that line to recompute its point"
    try:
        line = raw.decode()
    except UnicodeDecodeError as e:
        byte = raw[e.start : e.start + 1]
        raise UserError(f"{where}: not UTF-8 (byte {e.start + 1} is {byte!r}); {fix}") from e
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not a JSON line ({e}); {fix}") from e
    problem = _record_problem(record)
    if problem:
        raise UserError(f"{where}: not a sweep point's record ({problem}); {fix}")
    return record


def _record_problem(record) -> str | None:
    """What keeps a parsed line from being {"index", "overrides", "metrics"}; None if nothing."""
    if not isinstance(record, dict):
        return f"a JSON {_json_type(record)}, not an object with {', '.join(RECORD_KEYS)}"
    missing = [repr(key) for key in RECORD_KEYS if key not in record]
    if missing:
        return f"lacks {' and '.join(missing)}"
    index = record["index"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return f"'index' is {index!r:.40}, not a point number"
    for key in ("overrides", "metrics"):
        if not isinstance(record[key], dict):
            return f"{key!r} is a JSON {_json_type(record[key])}, not an object"
    return None


def _json_type(value) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return "null" if value is None else kinds.get(type(value), "object")


def load_results(workdir: str) -> list[dict]:
    """All finished points of the sweep in `workdir`, every process's, in point order."""
    return sorted(ResultStore(workdir).records(), key=lambda r: r["index"])


def load_sweep_meta(workdir: str) -> dict:
    path = os.path.join(workdir, SWEEP_FILE)
    if not os.path.exists(path):
        raise UserError(f"--workdir={workdir}: no {SWEEP_FILE}; run experiments.sweep first")
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read().decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        meta, problem = None, str(e)
    else:
        problem = "no 'config' in it"
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise UserError(
            f"{path}: unreadable ({problem}); delete it (and the results beside it) to start over"
        )
    return meta


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
