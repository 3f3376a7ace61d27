"""The W4A16 study: one dense character LM, every compression method from it, one table.

    dense (trained once, orbax checkpoint in WORKDIR/dense) -> for each method of
    config.quantize.methods: a copy of the dense model compressed, scored on the test text

Results go to WORKDIR/results.json after every method (a rerun skips the finished ones),
then WORKDIR/results.md (the table) and WORKDIR/pareto.png (nats/char against bits per
weight). `run(config, workdir)` is what experiments/lm_compress.py calls.
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import numpy as np
from absl import logging
from flax import nnx

from eie_jax import lm, lm_report, quantize, run_config, text
from eie_jax import workdir as workdirs
from eie_jax.errors import UserError
from eie_jax.layers import compressible_layers


def validate(config) -> None:
    """Rejects a bad config before any work, naming the field and what is allowed."""
    if config.model not in lm.LM_MODELS:
        raise UserError(f"config.model={config.model!r}: allowed: {lm.LM_MODELS}")
    need = functools.partial(run_config.check_field, config)
    need("seed", lambda v: run_config.integer(v) and v >= 0, "an int >= 0")
    for path in (
        "train.steps",
        "train.batch_size",
        "data.context",
        "prune.steps",
        "prune.frequency",
    ):
        need(path, lambda v: run_config.integer(v) and v >= 1, "an int >= 1")
    for path in ("train.learning_rate", "prune.learning_rate", "share.learning_rate"):
        need(path, lambda v: run_config.number(v) and v > 0, "a finite number > 0")
    for path in ("train.max_minutes", "prune.max_minutes", "share.max_minutes"):
        need(path, lambda v: run_config.number(v) and v >= 0, "minutes >= 0 (0: no budget)")
    for s in config.prune.sparsities:
        if not 0.0 < s < 1.0:
            raise UserError(f"config.prune.sparsities: {s!r}; allowed: fractions in (0, 1)")
    for name in config.quantize.methods:
        if name not in quantize.METHODS:
            raise UserError(
                f"config.quantize.methods: {name!r}; allowed: {', '.join(quantize.METHODS)}"
            )
    for bits in config.quantize.bits:
        if bits not in (2, 3, 4, 8):
            raise UserError(f"config.quantize.bits: {bits!r}; allowed: 2, 3, 4, 8")
    shapes = nnx.eval_shape(lambda: lm.build_model(config, 64))
    for name, layer in compressible_layers(shapes):
        for method in config.quantize.methods:
            group = quantize.GROUPS.get(method)
            if group and layer.in_features % group:
                raise UserError(
                    f"config.quantize.methods: {method} needs every layer's inputs to be a "
                    f"multiple of {group}; {name} has {layer.in_features} (change model_kwargs)"
                )


def load_corpus(config) -> text.TextData:
    d = config.data
    return text.load(d.data_dir, d.validation_works, d.test_works)


def dense_model(config, corpus, workdir):
    """The dense model: restored from WORKDIR/dense, else trained and saved there."""
    path = os.path.join(workdir, "dense")
    build = lambda: lm.build_model(config, corpus.vocab_size)
    if lm.has_checkpoint(path):
        model, meta = lm.restore_dense(path, build)
        if meta.get("vocab") != corpus.vocab:
            raise UserError(f"{path}: trained on another vocabulary; use a new --workdir")
        logging.info("[dense] restored from %s", path)
        return model, meta
    model = build()
    record = lm.train(
        model, corpus, config, steps=config.train.steps,
        learning_rate=config.train.learning_rate, minutes=config.train.max_minutes,
        stage="dense", seed=config.seed,
    )  # fmt: skip
    meta = dict(
        vocab=corpus.vocab,
        works={k: list(v) for k, v in corpus.works.items()},
        validation_nats=score(model, corpus.validation, config),
        test_nats=score(model, corpus.test, config),
        **record,
    )
    lm.save_dense(path, model, meta)
    logging.info(
        "[dense] %d steps in %.0f s: validation %.4f, test %.4f nats/char",
        record["steps"], record["seconds"], meta["validation_nats"], meta["test_nats"],
    )  # fmt: skip
    return model, meta


def score(model, ids, config) -> float:
    return lm.evaluate(model, ids, config.data.context, config.data.eval_windows)


# The fields the dense model depends on: a workdir holds one dense model, so a rerun may
# change anything else (methods, pruning, sharing) but not these.
DENSE_FIELDS = ("model", "model_kwargs", "data", "train", "seed")


def check_workdir(config, workdir: str) -> None:
    """Refuses a workdir whose dense model was made with other DENSE_FIELDS (one line
    naming them), else records them in WORKDIR/dense_config.json."""
    current = json.loads(config.to_json())
    dense = {k: current[k] for k in DENSE_FIELDS}
    workdirs.check_same_config(workdir, dense, "dense_config.json")


def run(config, workdir: str, *, dense_only: bool = False) -> dict:
    """The whole study; returns the results dict written to WORKDIR/results.json."""
    validate(config)
    corpus = load_corpus(config)
    with workdirs.lock(workdir):
        check_workdir(config, workdir)
        return _run(config, corpus, workdir, dense_only)


def _saved_results(path) -> dict:
    """{rows, jobs} of a results.json a run left, or {} (a damaged one is a UserError
    naming it, before any training)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return dict(rows=list(saved["rows"]), jobs=list(saved["jobs"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{path}: damaged ({type(e).__name__}: {e}); move it away to recompute the "
            "methods (the dense model in WORKDIR/dense is kept)"
        ) from None


def _run(config, corpus, workdir, dense_only):
    logging.info(
        "text: train %d, validation %d, test %d characters; vocabulary %d",
        len(corpus.train), len(corpus.validation), len(corpus.test), corpus.vocab_size,
    )  # fmt: skip
    results_path = os.path.join(workdir, "results.json")
    saved = _saved_results(results_path)
    model, meta = dense_model(config, corpus, workdir)
    params = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    dense_kb = sum(int(np.prod(p.shape)) for p in params) * 32 / 8 / 1024
    results = dict(model=config.model, dense=dict(meta, model_kb=dense_kb), rows=[], jobs=[])
    results.update(saved)
    if dense_only:
        return results
    calib = None
    for method in config.quantize.methods:
        for job in quantize.jobs(method, config):
            if job.name in results["jobs"]:
                continue
            if job.needs_calibration and calib is None:
                calib = lm.calibration_inputs(model, corpus, config)
            start = time.time()
            rows = quantize.run_job(job, lm.copy(model), corpus, config, calib)
            for row in rows:
                row["seconds"] = time.time() - start
                row["delta_nats"] = row["test_nats"] - meta["test_nats"]
                logging.info(
                    "[%s] %.2f bits/weight, test %.4f nats/char (%+.4f), %.0f s",
                    row["name"], row["bits_per_weight"], row["test_nats"], row["delta_nats"],
                    row["seconds"],
                )  # fmt: skip
                results["rows"].append(row)
            results["jobs"].append(job.name)
            workdirs.write_json_atomic(results_path, results, indent=2)
    workdirs.write_json_atomic(results_path, results, indent=2)
    lm_report.write(results, workdir)
    return results
