"""A sweep's workdir: DIR/results.<process>.jsonl (one line per finished point), its config.

Process i of a sweep (0 when it runs alone) appends each point it finishes to its own
DIR/results.<i>.jsonl as {"index", "overrides", "metrics"} and flushes it; the reader
merges every results.*.jsonl (and a results.jsonl of older versions), so a point finished
by any process, under any number of processes, counts as done. DIR/sweep_config.json
records the config and the points (`workdir.check_same_config`), so a rerun skips finished
points and a changed config is refused, naming the fields that changed.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable, Sequence

import ml_collections
from absl import logging

from eie_jax import workdir as workdirs
from eie_jax.errors import UserError
from eie_jax.sweep.axes import Overrides, point_key

RESULTS_FILE = "results.{process}.jsonl"
LEGACY_RESULTS_FILE = "results.jsonl"  # one process, before multi-process sweeps
SWEEP_FILE = "sweep_config.json"
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
        with open(path, "rb") as f:
            data = f.read()
        complete, _, partial = data.rpartition(b"\n")
        if partial and own:
            # The process died mid-line: drop the fragment so the next append starts clean.
            logging.warning("%s: dropping a partial last line", path)
            with open(path, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        records = []
        for n, line in enumerate(complete.decode().splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{path}:{n}: not a JSON line ({e}); delete that line to recompute its point"
                ) from e
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


def load_results(workdir: str) -> list[dict]:
    """All finished points of the sweep in `workdir`, every process's, in point order."""
    return sorted(ResultStore(workdir).records(), key=lambda r: r["index"])


def load_sweep_meta(workdir: str) -> dict:
    path = os.path.join(workdir, SWEEP_FILE)
    if not os.path.exists(path):
        raise UserError(f"--workdir={workdir}: no {SWEEP_FILE}; run experiments.sweep first")
    with open(path) as f:
        return json.load(f)


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
