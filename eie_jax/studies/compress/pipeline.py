"""The stages of a Deep Compression run, then the compressed FC layers on the EIE model.

    dense -> pruned (pruning with retraining) -> shared (weight sharing, centroid
    fine-tuning) -> eie (fixed-point accuracy and cycles); then the storage report

(Han, Mao, Dally, ICLR 2016; Han et al., NIPS 2015; Han et al., ISCA 2016.) Each stage is a
named function that returns a typed result; `train_and_evaluate` runs them in order, each
ending in a checkpoint in WORKDIR/checkpoints (`checkpoint.py`), and a rerun of the same
command resumes after the last finished stage, keeping the seconds of the stages it
resumed from. `train_and_evaluate(config, workdir)` is what experiments/compress.py calls
and what the tests call with a `:smoke` config.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from eie_jax.api import on_eie
from eie_jax.api.figures import LayerFigures
from eie_jax.compression import prune, quantizers, storage
from eie_jax.compression.layers import compressible_layers
from eie_jax.data import idx as data
from eie_jax.studies.compress.config import (
    EIE_FIELDS,
    build_model,
    eie_config,
    share_method,
    validate_config,
    weight_bits,
)
from eie_jax.studies.compress.report import to_markdown
from eie_jax.training import checkpoint, hw_loss
from eie_jax.training.classifier import accuracy, predict, train
from eie_jax.training.trainer import InStage
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError

# Re-exported: what experiments and sweeps use of a compression run.
__all__ = [
    "EIE_FIELDS", "accuracy", "build_model", "eie_config", "predict", "share_method", "train",
    "validate_config", "weight_bits",
]  # fmt: skip

# ------------------------------------------------------------------ stage results


@dataclasses.dataclass
class StageResult:
    """What every stage returns: the test accuracy after it and the seconds it took."""

    accuracy: float
    seconds: float = 0.0


@dataclasses.dataclass
class PruneResult(StageResult):
    kept: dict = dataclasses.field(default_factory=dict)  # {layer: fraction of weights kept}


@dataclasses.dataclass
class ShareResult(StageResult):
    accuracy_before_finetune: float = 0.0  # right after quantization


@dataclasses.dataclass
class EIEResult(StageResult):
    """accuracy: on EIE (16-bit fixed point); runs: each EIE layer's figures.LayerFigures
    over the test set."""

    fixed_point_accuracy: float = 0.0
    equals_fixed_point: bool = False
    runs: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.runs = [
            r if isinstance(r, LayerFigures) else LayerFigures(**dict(r, shape=tuple(r["shape"])))
            for r in self.runs
        ]


# ------------------------------------------------------------------ stages


def test_accuracy(model, dataset) -> float:
    return accuracy(model, dataset.test.images, dataset.test.labels)


def dense_stage(model, dataset, config, progress=None) -> StageResult:
    """Dense training (the network every compression starts from)."""
    train(
        model, dataset, config, epochs=config.train.epochs,
        learning_rate=config.train.learning_rate, stage="dense", progress=progress,
    )  # fmt: skip
    return StageResult(accuracy=test_accuracy(model, dataset))


def prune_stage(model, dataset, config, teacher=None, progress=None) -> PruneResult:
    """Pruning with retraining: the config's score x structure x distribution x schedule
    (eie_jax/compression/prune). A learned score trains its masks instead of following a
    schedule."""
    p = prune.validate(config.prune, [n for n, _ in compressible_layers(model)])
    targets = prune.layer_targets(p, model)
    steps_per_epoch = -(-len(dataset.train.images) // config.train.batch_size)

    def retrain(epochs, stage, on_step=None, penalty=0.0):
        train(
            model, dataset, config, epochs=epochs, learning_rate=p["learning_rate"],
            stage=stage, on_step=on_step, penalty=penalty, teacher=teacher,
            hw=hw_loss.HWLoss.from_config(config), progress=progress,
        )  # fmt: skip

    if prune.get("score", p["score"]).info.get("learned"):
        keep = {name: 1.0 - (t or 0.0) for name, t in targets.items()}
        prune.train_learned(model, keep, retrain, epochs=p["epochs"], penalty=p["penalty"])
    else:
        ctx = prune.Context(
            prune=lambda scale: prune.prune_model(
                model, p, scale=scale, seed=config.seed, targets=targets
            ),
            train=retrain,
            epochs=p["epochs"],
            steps_per_epoch=steps_per_epoch,
        )
        schedule = prune.get("schedule", p["schedule"])
        schedule.fn(ctx, **prune.entry_settings(schedule, p))
    kept = {name: float(jnp.mean(layer.mask[...])) for name, layer in compressible_layers(model)}
    return PruneResult(accuracy=test_accuracy(model, dataset), kept=kept)


def quantize(model, config) -> None:
    """Every layer's survivors -> codes into a 2**bits-entry codebook, by config.share.method
    (a one-table quantizer of `compression.quantizers`: 'kmeans' or 'linear')."""
    for i, (name, layer) in enumerate(compressible_layers(model)):
        q = quantizers.quantize(
            share_method(config), layer.kernel[...], layer.mask[...], weight_bits(config, name),
            init=config.share.init, key=jax.random.key(config.seed + i),
        )  # fmt: skip
        layer.share(q.codebook, q.codes, trainable=q.trainable)


def share_stage(model, dataset, config, teacher=None, progress=None) -> ShareResult:
    """Weight sharing per layer (`quantize`), then fine-tuning (Deep Compression Sec. 3):
    k-means centroids and biases are fine-tuned; a frozen grid moves only the biases."""
    quantize(model, config)
    before = test_accuracy(model, dataset)
    train(
        model, dataset, config, epochs=config.share.finetune_epochs,
        learning_rate=config.share.learning_rate, stage="share/finetune", teacher=teacher,
        progress=progress,
    )  # fmt: skip
    return ShareResult(accuracy=test_accuracy(model, dataset), accuracy_before_finetune=before)


def storage_report(model, config) -> storage.CompressionReport:
    rows = []
    for name, layer in compressible_layers(model):
        rows.append(
            storage.layer_storage(
                name,
                np.asarray(layer.hardware_codes()),
                weight_bits(config, name),
                config.storage.index_bits,
                num_biases=int(layer.bias.shape[0]),
                huffman=config.storage.huffman,
                eie_num_pes=config.eie.num_pes,
                eie_index_bits=config.eie.index_bits,
            )
        )
    return storage.CompressionReport(rows)


def eie_rules(config) -> list:
    """The layers EIE runs: those whose name fully matches config.eie.layers; the rest of
    the forward (LeNet-5's convolutions, pooling, activations) runs on the host in float."""
    return [(config.eie.layers, {"eie": True}), (".*", {"eie": False})]


def eie_stage(model, dataset, config) -> EIEResult:
    """The model's own forward over the whole test set with the layers config.eie.layers
    names on EIE (`on_eie.run_on_eie`, formats calibrated on training data), and the same
    forward with those products in fixed point computed densely (the oracle)."""
    batch = config.eie.batch_size
    logits, report = on_eie.run_on_eie(
        model, dataset.test.images, config=eie_config(config),
        calibration=dataset.train.images[: config.eie.calibration_size], batch_size=batch,
        chunk=batch, rules=eie_rules(config), headroom_bits=config.eie.headroom_bits, rtl=False,
    )  # fmt: skip
    reference, _ = on_eie.run_fixed_point(
        model, dataset.test.images, programs=report.programs, batch_size=batch,
        rules=eie_rules(config),
    )  # fmt: skip
    labels = np.asarray(dataset.test.labels)
    logits, reference = np.asarray(logits), np.asarray(reference)
    return EIEResult(
        accuracy=float(np.mean(np.argmax(logits, -1) == labels)),
        fixed_point_accuracy=float(np.mean(np.argmax(reference, -1) == labels)),
        equals_fixed_point=bool(np.array_equal(logits, reference)),
        runs=report.layers,
    )


# ------------------------------------------------------------------ the whole run

STAGES = ("1_dense", "2_pruned", "3_shared", "4_eie")


def run_stage(name, fn, model, ckpt_dir, result_type=StageResult, minutes=None):
    """Runs one stage and checkpoints the model with its result, or resumes from that
    checkpoint (model state and result, seconds included) when it exists.

    fn(progress): the stage, given a `trainer.InStage` at CKPT_DIR/NAME.partial that
    checkpoints inside it every `minutes` (None: not inside) and resumes from there.
    """
    path = os.path.join(ckpt_dir, name)
    if os.path.isdir(path):
        meta = checkpoint.restore(path, model)
        logging.info("[%s] resumed from %s", name, path)
        return _result(result_type, meta, path)
    progress = None if minutes is None else InStage(path + ".partial", minutes)
    start = time.time()
    result = fn(progress)
    result.seconds = time.time() - start + (progress.seconds_before if progress else 0.0)
    checkpoint.save(path, model, dataclasses.asdict(result))
    if progress is not None:
        progress.done()
    return result


STAGE_RESULTS = dict(zip(STAGES, (StageResult, PruneResult, ShareResult, EIEResult), strict=True))


def stage_result(ckpt_dir: str, name: str) -> StageResult:
    """The typed result a finished stage recorded in its checkpoint (no model needed)."""
    path = os.path.join(ckpt_dir, name)
    return _result(STAGE_RESULTS[name], checkpoint.read_meta(path), path)


def _result(result_type, meta: dict, path: str) -> StageResult:
    """The typed result a checkpoint recorded; one that does not parse (written by another
    version of eie_jax) is named, with the way out."""
    try:
        return result_type(**meta)
    except (TypeError, KeyError, ValueError) as e:
        raise UserError(
            f"checkpoint {path} holds a stage result this version cannot read "
            f"({type(e).__name__}: {e}); delete it to recompute that stage"
        ) from None


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs every stage, writes WORKDIR/report.{json,md} and checkpoints; returns the report.

    Preflight (the config, the dataset) before the workdir is touched, so that a run that
    fails there leaves nothing behind; then WORKDIR's lock throughout (a second run on the
    same workdir is refused) and its config check (config.json).
    """
    t0 = time.time()
    validate_config(config)
    dataset = data.load_dataset(
        config.dataset,
        config.data_dir or None,
        validation_size=config.validation_size,
        seed=config.seed,
    )
    logging.info(
        "data: %s  train %d  validation %d  test %d",
        config.dataset,
        len(dataset.train.images),
        len(dataset.validation.images),
        len(dataset.test.images),
    )
    # How often a stage checkpoints inside does not change its results.
    with workdirs.session(workdir, "compress", config, ignore=("train.checkpoint_minutes",)):
        return _train_and_evaluate(config, workdir, dataset, t0)


def _train_and_evaluate(config, workdir: str, dataset, t0: float) -> dict:
    model = build_model(config.model, config.seed)
    ckpt = os.path.join(workdir, "checkpoints")
    every = config.train.checkpoint_minutes
    dense = run_stage(
        "1_dense", lambda p: dense_stage(model, dataset, config, p), model, ckpt, minutes=every
    )
    logging.info("[dense] test accuracy %.4f", dense.accuracy)
    # The dense network teaches the compressed one (config.distill; weight 0: no teacher):
    # its logits on the training set, computed once.
    teacher = predict(model, dataset.train.images) if config.distill.weight > 0 else None
    pruned = run_stage(
        "2_pruned", lambda p: prune_stage(model, dataset, config, teacher, p), model, ckpt,
        PruneResult, every,
    )  # fmt: skip
    kept = ", ".join(f"{k} {v:.3f}" for k, v in pruned.kept.items())
    logging.info("[pruned] test accuracy %.4f  kept %s", pruned.accuracy, kept)
    shared = run_stage(
        "3_shared", lambda p: share_stage(model, dataset, config, teacher, p), model, ckpt,
        ShareResult, every,
    )  # fmt: skip
    logging.info("[shared] test accuracy %.4f", shared.accuracy)
    report = storage_report(model, config)
    logging.info("storage:\n%s", report.to_markdown())
    hw = run_stage("4_eie", lambda _: eie_stage(model, dataset, config), model, ckpt, EIEResult)
    logging.info("[eie] accuracy %.4f (fixed point %.4f)", hw.accuracy, hw.fixed_point_accuracy)
    stages = dict(zip(STAGES, (dense, pruned, shared, hw), strict=True))
    result = build_report(config, stages, report, wall=time.time() - t0)
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write(to_markdown(result, report))
    return result


def build_report(config, stages: dict, report: storage.CompressionReport, wall: float) -> dict:
    """report.json: the stage results, the storage table and each layer's EIE figures."""
    dense, pruned, shared, hw = (stages[name] for name in STAGES)
    result = dict(
        dataset=config.dataset,
        model=config.model,
        dense_accuracy=dense.accuracy,
        pruned_accuracy=pruned.accuracy,
        quantized_accuracy=shared.accuracy_before_finetune,
        compressed_accuracy=shared.accuracy,
        eie_accuracy=hw.accuracy,
        fixed_point_accuracy=hw.fixed_point_accuracy,
        eie_equals_fixed_point=hw.equals_fixed_point,
        compression_ratio=report.compression_ratio_pqh,
        compression_ratio_pq=report.compression_ratio_pq,
        compression_ratio_eie=report.compression_ratio_eie,
        storage=report.to_dict(),
        layers={},
        eie_config={k: config.eie[k] for k in EIE_FIELDS},
        # Resumed stages keep the seconds they took when they ran; total is their sum, wall
        # the time of this invocation (data loading and resuming included).
        seconds=dict(
            {name: r.seconds for name, r in stages.items()},
            total=sum(r.seconds for r in stages.values()),
            wall=wall,
        ),
        config=config.to_dict(),
    )
    runs = {r.name: r for r in hw.runs}
    for row in report.layers:
        entry = dict(
            weights_kept=row.weights_kept,
            weight_bits=row.weight_bits_pqh,
            index_bits=row.index_bits_pqh,
            weight_bits_pq=row.weight_bits_pq,
            index_bits_pq=row.index_bits_pq,
            codebook_bits=weight_bits(config, row.name),
        )
        if row.name in runs:
            run = runs[row.name]  # means per test input
            entry.update(
                cycles=run.per_vector(run.cycles),
                time_us=run.per_vector(run.time_us),
                load_efficiency=run.load_efficiency,
                eie_entries=run.entries,
                eie_padding=run.padding,
                act_frac_bits=run.act_frac_bits,
                weight_frac_bits=run.weight_frac_bits,
            )
        result["layers"][row.name] = entry
    return result


SUMMARY_FIELDS = (
    "dense_accuracy", "pruned_accuracy", "compressed_accuracy", "eie_accuracy",
    "compression_ratio", "compression_ratio_pq", "compression_ratio_eie",
)  # fmt: skip


def sweep_point(config, workdir: str) -> dict:
    """One training point of a sweep: the whole run, summarised to its headline numbers."""
    result = train_and_evaluate(config, workdir)
    summary = {key: result[key] for key in SUMMARY_FIELDS}
    summary["weights_kept"] = result["storage"]["weights_kept"]
    summary["eie_cycles"] = sum(v.get("cycles", 0.0) for v in result["layers"].values())
    summary["seconds"] = result["seconds"]["total"]
    return summary


sweep_point.validate = validate_config  # the sweep checks every point before training
