"""The W4A16 study: one dense character LM, every compression method from it, one table.

    dense (the published checkpoint config.train.checkpoint, or trained: orbax checkpoint
    in WORKDIR/dense, its learning curve in WORKDIR/curve.png) -> for each method of
    config.quantize.methods: a copy of the dense model compressed, scored on the test text
    (calibrated methods on each of config.quantize.calibration_draws)

Results go to WORKDIR/results.json after every method (a rerun skips the finished ones),
then WORKDIR/results.md (the table and each family read off at bit budgets) and
WORKDIR/pareto.png / pareto_eie.png (nats/char against bits per weight, Deep Compression's
and EIE's formats). `run(config, workdir)` is what experiments/lm_compress.py calls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
from absl import logging
from flax import nnx

from eie_jax import eie
from eie_jax.compression import prune, share
from eie_jax.compression.layers import compressible_layers
from eie_jax.data import text
from eie_jax.studies.lm import bootstrap, dense
from eie_jax.studies.lm import methods as quantize
from eie_jax.studies.lm import report as lm_report
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import composed, sensitivity
from eie_jax.utils import schema
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError

# Split by work (no work in two splits); every other work of data_dir is training text.
VALIDATION_WORKS = ("julius_caesar", "twelfth_night")
TEST_WORKS = ("macbeth", "much_ado_about_nothing")
# Every method of the study, in the order it runs them (rows of its table).
METHODS = (
    "kmeans_layer",  # per-layer k-means (EIE), post-training and fine-tuned, each sparsity
    "kmeans_row",  # per-output-row 16 / 8-entry codebooks, dense
    # SqueezeLLM: k-means weighted by each weight's Fisher information, per layer (one
    # table: runs on EIE) and per row (methods/sensitivity.py)
    "squeezellm_layer", "squeezellm_row",
    "rtn_sym_channel", "rtn_asym_channel", "rtn_sym_g32", "rtn_asym_g32",
    "rtn_sym_g128", "rtn_asym_g128",
    "gptq_g128", "awq_g128",
    # one-shot calibrated pruning (SparseGPT, Wanda) then per-layer (Fisher-weighted)
    # k-means, per rule and target of config.compose (methods/composed.py): on EIE
    "pruned_kmeans",
    "dense_retrain",  # control: the dense model trained on as long as pruning retrains
)  # fmt: skip


def section() -> schema.Section:
    """The schema of the LM study and of generation on EIE (experiments.lm_compress and
    experiments.generate): every field, its default and what it allows. Config files
    (configs/char_transformer.py) start from `section().defaults()` and override."""
    S, integer, number = schema.Section, schema.integer, schema.number
    steps, rate = integer(1, lo=1), number(1e-3, 0, above=True)
    minutes = number(0.0, 0, note="0: no budget")
    works = schema.sequence((), schema.string(""))
    return S(
        dict(
            seed=integer(0, lo=0),
            model=schema.choice("char_transformer", lm.LM_MODELS),
            # The model's own keyword arguments (besides vocab_size), checked by building it.
            model_kwargs=schema.Table(schema.anything(None, "a keyword argument of the model")),
            data=S(
                dict(
                    data_dir=schema.string("data/shakespeare"),
                    validation_works=dataclasses.replace(works, default=VALIDATION_WORKS),
                    test_works=dataclasses.replace(works, default=TEST_WORKS),
                    context=integer(128, lo=1),
                    # evenly spaced windows of each split that every method is scored on
                    eval_windows=integer(256, lo=1),
                )
            ),
            train=S(
                dict(
                    steps=dataclasses.replace(steps, default=1000),
                    batch_size=integer(16, lo=1),
                    learning_rate=dataclasses.replace(rate, default=2e-3),
                    weight_decay=number(0.0, 0),
                    warmup=integer(50, lo=0),
                    # A cap on dense training's time: steps are counted (a rerun repeats the
                    # result); a run that reaches the cap stops there, its record says so.
                    max_minutes=dataclasses.replace(minutes, default=20.0),
                    log_every=integer(100, lo=1),
                    # After a log line, when this many minutes have passed since the last
                    # save, the training checkpoints (WORKDIR/dense.partial) to resume from.
                    checkpoint_minutes=number(10.0, 0, note="0: every log line"),
                    # The learning curve: validation and test nats/char (data.eval_windows)
                    # after every this many steps, in the dense record (a multiple of
                    # log_every).
                    curve_every=integer(0, lo=0, doc="0: no curve"),
                    # A published dense model to start from (dense.py: STEM.npz and
                    # STEM.json); '' or --retrain: train it.
                    checkpoint=schema.string(""),
                )
            ),
            # Gradual magnitude pruning of every FC matrix from the dense model (Zhu &
            # Gupta), its steps cut, as in dense training, by a time budget per sparsity.
            prune=S(
                dict(
                    sparsities=schema.sequence(
                        (0.5, 0.7, 0.9), number(0.5, 0, 1, above=True, below=True)
                    ),
                    steps=dataclasses.replace(steps, default=300),
                    frequency=dataclasses.replace(steps, default=10),
                    learning_rate=dataclasses.replace(rate, default=5e-4),
                    max_minutes=dataclasses.replace(minutes, default=4.0),
                )
            ),
            # Per-layer k-means (Deep Compression / EIE): codebook entry 0 is the pruned
            # zero; centroid fine-tuning (with the biases, LayerNorms and embedding).
            share=S(
                dict(
                    init=schema.choice("linear", share.INITS),
                    finetune_steps=integer(100, lo=0),
                    learning_rate=dataclasses.replace(rate, default=1e-4),
                    max_minutes=dataclasses.replace(minutes, default=1.5),
                )
            ),
            quantize=S(
                dict(
                    methods=schema.sequence(
                        METHODS, schema.choice("kmeans_layer", quantize.methods)
                    ),
                    bits=schema.sequence((4, 3), schema.choice(4, (2, 3, 4, 8))),
                    calibration_windows=integer(128, lo=1),
                    # Calibrated methods (GPTQ, AWQ, SqueezeLLM, pruned_kmeans) run on
                    # this many draws of calibration windows: their rows average them and
                    # their intervals resample them (bootstrap.py).
                    calibration_draws=integer(1, lo=1),
                )
            ),
            # pruned_kmeans (methods/composed.py): one-shot calibrated pruning by each rule
            # at each target (a sparsity, or N:M along the inputs), then one table per
            # layer of each bits, with and without centroid fine-tuning (config.share).
            compose=S(
                dict(
                    rules=schema.sequence(
                        ("sparsegpt", "wanda"),
                        schema.choice("sparsegpt", lambda: sorted(prune.calibrated.RULES)),
                    ),
                    targets=schema.sequence(
                        ("0.5", "0.6", "0.7", "0.8", "2:4"),
                        schema.Field(
                            "0.5",
                            composed.target_ok,
                            "a sparsity in (0, 1) or 'N:M' with N < M, as a string",
                        ),
                    ),
                    bits=schema.sequence((2, 3, 4), schema.choice(4, (2, 3, 4, 8))),
                    quantizer=schema.choice("squeezellm_layer", composed.QUANTIZERS),
                    finetune=schema.boolean(True),
                )
            ),
            # Every difference from dense with a paired bootstrap interval over the same
            # test windows (bootstrap.py); the report ranks two methods only where the
            # interval of their difference excludes 0.
            bootstrap=S(
                dict(
                    samples=integer(10000, lo=0, doc="0: no intervals"),
                    seed=integer(0, lo=0),
                    level=number(0.95, 0, 1, above=True, below=True),
                )
            ),
            storage=S(
                dict(
                    index_bits=integer(4, 1, 16),
                    eie_num_pes=integer(64, lo=1),
                    eie_index_bits=integer(4, 1, 8),
                )
            ),
            # Batch-1 generation on EIE (experiments.generate): the dense model pruned
            # to `sparsity` by `rule` (magnitude per layer, or a calibrated rule) and
            # shared into one table of 2**bits entries per layer by `quantizer`, its
            # centroids fine-tuned (config.share) when `finetune`.
            generate=S(
                dict(
                    sparsity=number(0.5, 0, 1, below=True),
                    bits=integer(4, 1, 8),
                    rule=schema.choice(
                        "magnitude", lambda: ("magnitude", *sorted(prune.calibrated.RULES))
                    ),
                    quantizer=schema.choice("kmeans_layer", composed.QUANTIZERS),
                    finetune=schema.boolean(False),
                    num_pes=eie.config.FIELDS.fields["num_pes"],
                    fifo_depth=eie.config.FIELDS.fields["fifo_depth"],
                    # training windows the fixed-point formats are fitted on
                    calibration_windows=integer(32, lo=1),
                    # biases absorb the mean truncation error (decode.calibrate)
                    bias_correction=schema.boolean(True),
                    fidelity_chars=integer(2000, lo=1),  # teacher-forced test characters
                    fidelity_batch=integer(16, lo=1),
                    num_chars=integer(500, lo=1),
                    prompt=schema.string("ROMEO:\n"),
                    temperature=number(0.8, 0, above=True),
                )
            ),
        )
    )


def validate(config) -> None:
    """Rejects a bad config before any work, naming the field and what is allowed: the
    schema's checks, then the model built from its kwargs (shapes only) and the group
    sizes the methods need."""
    schema.check(config, section())
    t = config.train
    if t.curve_every % t.log_every:
        raise UserError(
            f"config.train.curve_every={t.curve_every}: must be a multiple of "
            f"config.train.log_every={t.log_every} (the curve is taken at log lines)"
        )
    try:
        shapes = nnx.eval_shape(lambda: lm.build_model(config, 64))
    except TypeError as e:
        raise UserError(f"config.model_kwargs: {e}") from None
    fisher_users = [m for m in config.quantize.methods if m in sensitivity.FISHER]
    if (
        "pruned_kmeans" in config.quantize.methods
        and config.compose.quantizer in sensitivity.FISHER
    ):
        fisher_users.append("config.compose.quantizer")
    if config.generate.quantizer in sensitivity.FISHER:
        fisher_users.append("config.generate.quantizer")
    if fisher_users and config.share.init not in sensitivity.INITS:
        raise UserError(
            f"config.share.init={config.share.init!r}: the squeezellm quantizers "
            f"({', '.join(fisher_users)}) allow {', '.join(sensitivity.INITS)}"
        )
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


def run(
    config, workdir: str, *, dense_only: bool = False, retrain: bool = False,
    publish: bool = False, command: str = "eie_jax.studies.lm.study.run (Python)",
) -> dict:  # fmt: skip
    """The whole study; returns the results dict written to WORKDIR/results.json.

    retrain: train the dense model even where config.train.checkpoint names a published
    one; publish: then write it there (`dense.publish`: the .npz and its .json, which
    records `command` as what trains it)."""
    validate(config)
    if publish and not (retrain and config.train.checkpoint):
        raise UserError(
            "--publish writes a newly trained dense model to config.train.checkpoint: it "
            f"needs --retrain and a config.train.checkpoint (is {config.train.checkpoint!r})"
        )
    corpus = load_corpus(config)
    dense.check_source(config, corpus, workdir, retrain)
    with dense.session(config, workdir):
        return _run(config, corpus, workdir, dense_only, retrain, command if publish else None)


# The sections a method's rows depend on (beside the dense fields): a rerun that skips
# finished jobs must have the same, but for the list of methods (more may be added).
METHOD_SECTIONS = ("prune", "share", "quantize", "compose", "storage", "bootstrap")


def method_settings(config) -> dict:
    tree = json.loads(config.to_json())
    return {k: tree[k] for k in METHOD_SECTIONS}


def _saved_results(path, config) -> dict:
    """{rows, jobs, settings} of a results.json a run left, or {}; a damaged one, or one
    whose rows were made with other METHOD_SECTIONS, is a UserError naming it, before
    any training."""
    if not os.path.exists(path):
        return {}
    move_away = "move it away to recompute the methods (the dense model in WORKDIR/dense is kept)"
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        kept = dict(rows=list(saved["rows"]), jobs=list(saved["jobs"]))
        settings = saved.get("settings")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: damaged ({type(e).__name__}: {e}); {move_away}") from None
    if settings is not None:
        changed = workdirs.config_differences(
            settings, method_settings(config), ignore=("quantize.methods",)
        )
        if changed:
            raise UserError(
                f"{path}: its rows were made with other settings ({'; '.join(changed[:3])}); "
                f"use a new --workdir, or {move_away}"
            )
    return kept


def _run(config, corpus, workdir, dense_only, retrain, publish_command):
    logging.info(
        "text: train %d, validation %d, test %d characters; vocabulary %d",
        len(corpus.train), len(corpus.validation), len(corpus.test), corpus.vocab_size,
    )  # fmt: skip
    results_path = os.path.join(workdir, "results.json")
    saved = _saved_results(results_path, config)
    model, meta = dense.dense_model(config, corpus, workdir, retrain=retrain)
    if publish_command is not None:
        info = dense.publish(config, model, meta, config.train.checkpoint, publish_command)
        logging.info(
            "[dense] published %s.npz (sha256 %s)", config.train.checkpoint, info["sha256"]
        )
    if meta.get("curve"):
        lm_report.plot_curve({config.model: meta["curve"]}, os.path.join(workdir, "curve.png"))
    params = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    dense_kb = sum(int(np.prod(p.shape)) for p in params) * 32 / 8 / 1024
    results = dict(
        model=config.model, dense=dict(meta, model_kb=dense_kb), rows=[], jobs=[],
        settings=method_settings(config),
    )  # fmt: skip
    results.update(saved)
    if dense_only:
        return results
    windows = bootstrap.result_windows(model, corpus, config)  # None: no intervals
    dense_nats = meta["test_nats"]
    if windows is not None:  # the rows' losses are means of windows: so is dense's here
        results["dense"]["test_windows"] = windows
        results["bootstrap"] = config.bootstrap.to_dict()
        dense_nats = float(np.mean(windows))
    # inputs, Fisher: on first use, per draw of calibration windows
    draws = [
        quantize.Calibration(model, corpus, config, draw=k)
        for k in range(config.quantize.calibration_draws)
    ]
    for method in config.quantize.methods:
        for job in quantize.jobs(method, config):
            if job.name in results["jobs"]:
                continue
            start = time.time()
            rows = quantize.merge_draws(
                [
                    quantize.run_job(job, lm.copy(model), corpus, config, calib)
                    for calib in (draws if job.uses_calibration_windows else draws[:1])
                ]
            )
            for row in rows:
                row["seconds"] = time.time() - start
                row["delta_nats"] = row["test_nats"] - dense_nats
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
