"""run_sweep: every point of a sweep not already in its workdir, under the workdir's lock.

- `config.runner == 'eie'`: EIE design points, batched (`eie_points.iter_eie_metrics`),
  sharded over every device of every process; process 0 writes the results.
- `config.runner == 'train'`: one training run per point, one after another, through the
  function named by `config.train_fn` (`train_fn(config[, workdir]) -> metrics`); with
  several processes (jax.distributed, `multihost.py`) each trains its share of the points.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import inspect
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
from absl import logging

from eie_jax.sweep import eie_points, multihost
from eie_jax.sweep.axes import Overrides, expand, point_key
from eie_jax.sweep.eie_points import iter_eie_metrics
from eie_jax.sweep.plot import check_plot
from eie_jax.sweep.store import Progress, ResultStore, load_results
from eie_jax.utils import schema
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError

RUNNERS = ("eie", "train")


def run_sweep(
    config: ml_collections.ConfigDict,
    axes: Sequence[Overrides],
    workdir: str,
    *,
    devices: Sequence[jax.Device] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Runs every point of the sweep not already in workdir; returns all records.

    Every process of a multi-process run calls it with the same arguments: each takes its
    own lock, reads the points finished by any process, waits for the others, then runs
    its share (`multihost`); all return the merged records once every process is done.
    Raises UserError for an unknown runner or field, an invalid point, a workdir that
    holds another sweep, or one that another process is sweeping into.
    """
    log = log or (lambda msg: logging.info("%s", msg))
    points = check_config(config, axes)
    runner = config.runner
    process, processes = jax.process_index(), jax.process_count()
    with workdirs.session(workdir, "sweep", process_id=process):
        store = ResultStore(workdir, process)
        done = store.open(config, points)
        # Every process has read the finished points before any process adds one.
        multihost.barrier("sweep: finished points read")
        pending = [(i, p) for i, p in enumerate(points) if point_key(p) not in done]
        where = f", process {process} of {processes}" if processes > 1 else ""
        log(
            f"sweep: {len(points)} points, {len(points) - len(pending)} already done, "
            f"runner {runner!r}, workdir {workdir}{where}"
        )
        if pending and runner == "eie":
            progress = Progress(len(points), len(points) - len(pending), log)
            _run_eie_points(config, pending, store, progress, devices, log)
        elif pending:
            mine = multihost.share(pending)
            progress = Progress(len(mine), 0, log)
            _run_training_points(config, mine, store, progress)
        multihost.barrier("sweep: every point done")
        return load_results(workdir)


# The sweep's own fields of a training sweep's config; the rest is train_fn's config.
TRAIN_SWEEP = schema.Section(
    dict(
        runner=schema.choice("train", RUNNERS),
        # 'package.module.fn': fn(config[, workdir]) -> metrics; its attribute `validate`,
        # if any, checks every point's config before the first one trains.
        train_fn=schema.string(""),
        plots=eie_points.PLOTS,
    )
)


def check_config(config, axes: Sequence[Overrides] = ()) -> list[Overrides]:
    """The sweep's config against its runner's schema (an EIE sweep's whole config; a
    training sweep's own fields), its plot specs, and every point of `axes` (a training
    sweep's through train_fn.validate when it has one); returns the points."""
    runner = config.get("runner", None)
    if runner not in RUNNERS:
        raise UserError(f"config.runner={runner!r}: allowed: {', '.join(RUNNERS)}")
    if runner == "eie":
        schema.check(config, eie_points.section())
    else:
        own = {k: config[k] for k in TRAIN_SWEEP.fields if k in config}
        schema.check(own, TRAIN_SWEEP)
    for spec in config.get("plots", []):
        check_plot(spec)
    points = expand(config, axes) if axes else []
    validate = runner == "train" and getattr(resolve_fn(config.train_fn), "validate", None)
    for point in points if validate else ():
        validate(point_config(config, point))
    return points


def point_config(config, overrides: Overrides) -> ml_collections.ConfigDict:
    """A training point's config: the sweep's with the point's overrides, without the
    sweep's own fields (runner, train_fn, plots)."""
    config = workdirs.apply_overrides(config, overrides)
    return ml_collections.ConfigDict(
        {k: config[k] for k in config.keys() if k not in TRAIN_SWEEP.fields}
    )


def _run_eie_points(config, pending, store: ResultStore, progress: Progress, devices, log):
    overrides = [p for _, p in pending]
    for chunk in iter_eie_metrics(config, overrides, devices=devices, log=log):
        if jax.process_index() != 0:
            continue  # every process computes its shards; process 0 writes them all
        records = [
            {"index": pending[i][0], "overrides": pending[i][1], "metrics": metrics}
            for i, metrics in chunk
        ]
        store.append(records)
        progress.update(len(records))


def resolve_fn(path: str) -> Callable:
    """The function named by 'package.module.fn' or 'package.module:fn'."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"config.train_fn={path!r}: cannot import {module_name!r} ({e})") from e
    if not callable(getattr(module, attr, None)):
        raise UserError(f"config.train_fn={path!r}: {module_name!r} has no function {attr!r}")
    return getattr(module, attr)


def _run_training_points(config, pending, store: ResultStore, progress: Progress):
    train_fn = resolve_fn(config.train_fn)
    takes_workdir = "workdir" in inspect.signature(train_fn).parameters
    # Every point's config is checked before the first one trains.
    configs = [(i, p, point_config(config, p)) for i, p in pending]
    with _trainer(config.train_fn) as train:
        for index, overrides, point in configs:
            kwargs = {}
            if takes_workdir:
                kwargs["workdir"] = os.path.join(store.workdir, "points", f"{index:05d}")
            metrics = train(point, **kwargs)
            store.append([{"index": index, "overrides": overrides, "metrics": metrics}])
            progress.update(1)


@contextlib.contextmanager
def _trainer(path: str):
    """train_fn, called here when alone, or in one child interpreter per process otherwise.

    A training point is a one-process JAX program; in a process of a multi-process sweep
    (jax.distributed) it runs in a spawned child, whose JAX runtime is its own: orbax then
    checkpoints the point's model locally instead of as an array spread over processes.
    The child lives for the whole sweep, so JAX is imported once per process, and no
    longer than its parent: a killed sweep process leaves no child training on into the
    workdir beside the relaunched one.
    """
    if jax.process_count() == 1:
        yield resolve_fn(path)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        yield lambda config, **kwargs: pool.submit(_call, path, config, kwargs).result()


def _call(path: str, config, kwargs):
    return resolve_fn(path)(config, **kwargs)


def _exit_with_parent(parent: int, every_s: float = 0.5):
    """In a child: a daemon thread that ends the process once `parent` is gone (the child
    is then re-parented, so its parent id changes), as a killed parent cannot stop it."""

    def watch():
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
