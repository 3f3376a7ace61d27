"""A sweep's workdir: DIR/results.jsonl (one line per finished point), its config, progress.

Each finished point is appended to DIR/results.jsonl as {"index", "overrides", "metrics"}
and flushed; DIR/sweep_config.json records the config and the points
(`workdir.check_same_config`), so a rerun skips finished points and a changed config is
refused, naming the fields that changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence

import ml_collections
from absl import logging

from eie_jax import workdir as workdirs
from eie_jax.errors import UserError
from eie_jax.sweep.axes import Overrides, point_key

RESULTS_FILE = "results.jsonl"
SWEEP_FILE = "sweep_config.json"
# Fields that change how results look, not what they are: they may change between runs.
PRESENTATION_FIELDS = ("plots",)


class ResultStore:
    """DIR/results.jsonl and DIR/sweep_config.json of one sweep."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.results_path = os.path.join(workdir, RESULTS_FILE)
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
                raise UserError(
                    f"{self.results_path}:{n}: not a JSON line ({e}); delete that line to "
                    "recompute its point"
                ) from e
            key = point_key(record["overrides"])
            if key not in seen:
                seen.add(key)
                records.append(record)
        return records

    def append(self, records: Sequence[dict]):
        """Appends finished points and forces them to disk before returning."""
        with open(self.results_path, "a") as f:
            for record in records:
                f.write(json.dumps(workdirs.jsonable(record), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def load_results(workdir: str) -> list[dict]:
    """All finished points of the sweep in `workdir`, in point order."""
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
