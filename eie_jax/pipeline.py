"""The stages of a Deep Compression run, then the compressed FC layers on the EIE model.

    dense training -> pruning with retraining -> weight sharing with centroid fine-tuning
    -> Huffman coding and the storage report -> EIE: fixed-point accuracy and cycles

(Han, Mao, Dally, ICLR 2016; Han et al., NIPS 2015; Han et al., ISCA 2016.) Each stage
ends in a checkpoint in WORKDIR/checkpoints, and a rerun of the same command resumes
after the last finished stage. `train_and_evaluate(config, workdir)` is what
experiments/compress.py calls and what the tests call with a `:smoke` config.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from eie_jax import checkpoint, data, eie, hardware, hw_loss, models, prune, share, storage
from eie_jax.layers import apply_masks, compressible_layers

PRUNE_METHODS = ("magnitude", "scores")
SCHEDULES = ("one_shot", "iterative", "gradual")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
SHARE_INITS = ("linear", "density", "random", "kmeans++")
SHARE_METHODS = ("kmeans", "linear")


# ------------------------------------------------------------------ configuration


def validate_config(config) -> None:
    """Rejects a bad config before any work, naming the field, its value and what is allowed."""

    def need(path, ok, allowed):
        value = config
        for part in path.split("."):
            value = value[part]
        if not ok(value):
            raise ValueError(f"config.{path}={value!r}: allowed: {allowed}")

    positive = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
    non_negative = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
    need("model", lambda v: v in models.MODELS, sorted(models.MODELS))
    need("dataset", lambda v: v in data.DATASETS, sorted(data.DATASETS))
    need("validation_size", non_negative, "an int >= 0")
    need("train.epochs", non_negative, "an int >= 0")
    need("train.batch_size", positive, "an int > 0")
    need("train.learning_rate", lambda v: v > 0, "> 0")
    need("train.weight_decay", lambda v: v >= 0, ">= 0")
    need("train.optimizer", lambda v: v in OPTIMIZERS, OPTIMIZERS)
    need("train.lr_schedule", lambda v: v in LR_SCHEDULES, LR_SCHEDULES)
    need("prune.method", lambda v: v in PRUNE_METHODS, PRUNE_METHODS)
    need("prune.schedule", lambda v: v in SCHEDULES, SCHEDULES)
    need("prune.rounds", positive, "an int > 0")
    need("prune.epochs_per_round", non_negative, "an int >= 0")
    need("prune.learning_rate", lambda v: v > 0, "> 0")
    need("distill.weight", lambda v: 0 <= v <= 1, "in [0, 1] (0: no distillation)")
    need("distill.temperature", lambda v: v > 0, "> 0")
    need("share.init", lambda v: v in SHARE_INITS, SHARE_INITS)
    method = share_method(config)
    if method not in SHARE_METHODS:
        raise ValueError(f"config.share.method={method!r}: allowed: {SHARE_METHODS}")
    need("share.finetune_epochs", non_negative, "an int >= 0")
    need("storage.index_bits", lambda v: isinstance(v, int) and 1 <= v <= 16, "an int in 1..16")
    need("prune.target_density", lambda v: 0 <= v <= 1, "a fraction in [0, 1] (0: off)")
    need("share.bits", lambda v: isinstance(v, int) and 1 <= v <= 8, "an int in 1..8")
    model_layers = [name for name, _ in compressible_layers(_build_model(config.model, 0))]
    for name in config.share.layer_bits:
        if name not in model_layers:
            raise ValueError(
                f"config.share.layer_bits.{name}: no such layer in {config.model}; "
                f"layers: {model_layers}"
            )
        need(f"share.layer_bits.{name}", lambda v: 1 <= v <= 8 and int(v) == v, "an int in 1..8")
    for name in config.prune.rule.get("layers") or {}:
        if name not in model_layers:
            raise ValueError(
                f"config.prune.rule.layers.{name}: no such layer in {config.model}; "
                f"layers: {model_layers}"
            )
    if method == "linear":
        for name in model_layers:
            if weight_bits(config, name) < 2:
                raise ValueError(
                    f"config.share.bits={weight_bits(config, name)} (layer {name}): "
                    "share.method='linear' needs >= 2 bits (a sign and a magnitude)"
                )
    hw_loss.HWLoss.from_config(config)
    eie.EIEConfig.from_dict(_eie_fields(config), where="config.eie")


def share_method(config) -> str:
    """config.share.method: 'kmeans' (Deep Compression, the default) or 'linear' (int grid)."""
    return config.share.get("method", "kmeans")


def _eie_fields(config) -> dict:
    keys = ("num_pes", "fifo_depth", "index_bits", "clock_mhz")
    return {k: config.eie[k] for k in keys}


def weight_bits(config, name) -> int:
    """Codebook bits of one layer: share.layer_bits[name] if set, else share.bits."""
    return int(config.share.layer_bits.get(name, config.share.bits))


def _build_model(name, seed):
    return models.get_model(name, rngs=nnx.Rngs(seed))


# ------------------------------------------------------------------ training


def _optimizer(model, learning_rate, config, total_steps):
    """The configured optimizer over the Params; cosine decay spans one stage's steps."""
    if config.train.lr_schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
    if config.train.optimizer == "adam":
        tx = optax.adamw(learning_rate, weight_decay=config.train.weight_decay)
    else:
        tx = optax.chain(
            optax.add_decayed_weights(config.train.weight_decay),
            optax.sgd(learning_rate, momentum=0.9),
        )
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def _loss(model, images, labels, teacher_logits, weights, hw=None):
    """Cross entropy, or its mix with distillation from the dense teacher, plus penalties.

    weights: dict(penalty=, distill=, temperature=) as traced scalars (no recompiles).
    Distillation (Hinton et al. 2015): (1 - d) * CE + d * T**2 * KL(teacher_T || student_T).
    """
    logits = model(images)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    t = weights["temperature"]
    targets = jax.nn.softmax(teacher_logits / t)
    kl = optax.kl_divergence(jax.nn.log_softmax(logits / t), targets).mean()
    d = weights["distill"]
    loss = (1.0 - d) * ce + d * t**2 * kl
    penalty = sum(layer.sparsity_penalty() for _, layer in compressible_layers(model))
    if hw is not None:  # EIE's expected cycles (hw_loss.py); None: nothing traced
        loss = loss + hw.weight * hw_loss.hardware_loss(model, images, hw)
    return loss + weights["penalty"] * penalty


@nnx.jit(static_argnames=("hw",))
def _train_step(model, optimizer, images, labels, teacher_logits, weights, hw=None):
    loss, grads = nnx.value_and_grad(_loss)(model, images, labels, teacher_logits, weights, hw)
    optimizer.update(model, grads)
    # Adam's moments and weight decay would revive pruned weights: mask after every update.
    apply_masks(model)
    return loss


@nnx.jit
def _logits(model, images):
    return model(images)


def predict(model, images, batch_size: int = 2000) -> np.ndarray:
    """The model's logits on every image, as one NumPy array."""
    return np.concatenate(
        [
            np.asarray(_logits(model, jnp.asarray(images[s : s + batch_size])))
            for s in range(0, len(images), batch_size)
        ]
    )


def accuracy(model, images, labels, batch_size: int = 2000) -> float:
    if len(images) == 0:
        return 0.0
    return float(np.mean(np.argmax(predict(model, images, batch_size), -1) == labels))


def train(
    model,
    dataset,
    config,
    *,
    epochs,
    learning_rate,
    stage,
    on_step=None,
    penalty=0.0,
    teacher=None,
    hw=None,
):
    """Trains for `epochs`, logging loss and validation accuracy after each epoch.

    on_step(step) runs before every step (pruning schedules use it). hw: a hw_loss.HWLoss
    adds EIE's expected cycles to the loss (None: off). teacher: the dense model's logits
    on every training example (see `predict`); with config.distill.weight > 0 the loss
    mixes in distillation. The optimizer is made afresh for each stage; masks are
    re-applied after every update, so its momentum cannot revive a weight pruned in the
    middle of a stage.
    """
    steps_per_epoch = -(-len(dataset.train.images) // config.train.batch_size)
    optimizer = _optimizer(model, learning_rate, config, epochs * steps_per_epoch)
    distill = float(config.distill.weight) if teacher is not None else 0.0
    weights = dict(
        penalty=jnp.float32(penalty),
        distill=jnp.float32(distill),
        temperature=jnp.float32(config.distill.temperature),
    )
    train_x, train_y = dataset.train.images, dataset.train.labels
    if teacher is None:
        teacher = np.zeros((len(train_y), dataset.num_classes), np.float32)
    step = 0
    for epoch in range(epochs):
        start, losses = time.time(), []
        # Shuffled example indices, so that images, labels and teacher logits stay aligned.
        for idx, labels in data.batches(
            np.arange(len(train_y)), train_y, config.train.batch_size, seed=config.seed, epoch=epoch
        ):
            if on_step is not None:
                on_step(step)
            images, teacher_logits = train_x[idx], teacher[idx]
            losses.append(
                _train_step(model, optimizer, images, labels, teacher_logits, weights, hw)
            )
            step += 1
        val = accuracy(model, dataset.validation.images, dataset.validation.labels)
        logging.info(
            "[%s] epoch %d/%d  loss %.4f  val acc %.4f  (%.1f s)",
            stage,
            epoch + 1,
            epochs,
            float(np.mean(jax.device_get(losses))),
            val,
            time.time() - start,
        )
    return step


# ------------------------------------------------------------------ stages


def _layer_sparsity(rule, name) -> float:
    """A layer's target sparsity in a prune rule: its `layers` override, else the rule's."""
    layers = rule.get("layers", {}) or {}
    return float(layers.get(name, {}).get("sparsity", rule.get("sparsity", 0.0)))


def prune_rule(config, model) -> dict:
    """config.prune.rule, with every layer's sparsity rescaled when prune.target_density > 0.

    Each layer keeps (1 - sparsity) of its weights; target_density multiplies these kept
    fractions by one factor c (found by bisection, each capped at 1) so that the model as a
    whole keeps target_density of its weights: Deep Compression's per-layer ratios, at a
    chosen overall density. Only for the 'sparsity' and 'balanced' rules.
    """
    rule = config.prune.rule.to_dict()
    target = float(config.prune.target_density)
    if target <= 0:
        return rule
    if rule["rule"] not in ("sparsity", "balanced"):
        raise ValueError(
            f"config.prune.target_density={target}: needs rule 'sparsity' or 'balanced', "
            f"not {rule['rule']!r}"
        )
    layers = compressible_layers(model)
    sizes = np.array([layer.kernel[...].size for _, layer in layers], float)
    keep = np.array([1.0 - _layer_sparsity(rule, name) for name, _ in layers])
    lo, hi = 0.0, 1.0 / max(keep.min(), 1e-12)
    for _ in range(100):
        c = (lo + hi) / 2
        if np.sum(np.minimum(keep * c, 1.0) * sizes) / sizes.sum() < target:
            lo = c
        else:
            hi = c
    scaled = np.minimum(keep * hi, 1.0)
    rule["layers"] = {
        name: dict(rule.get("layers", {}).get(name, {}), sparsity=float(1.0 - k))
        for (name, _), k in zip(layers, scaled, strict=True)
    }
    return rule


def prune_and_retrain(model, dataset, config, teacher=None):
    """Pruning with retraining, by the configured method and schedule.

    magnitude + iterative: rounds r = 1..R prune each layer to r/R of its target (the
    rule's sparsity or std quality) and retrain (Han et al. NIPS 2015, Sec. 3.3);
    one_shot: a single round; gradual: the Zhu & Gupta cubic schedule over all retraining
    steps. scores: trainable scores choose each layer's top (1 - sparsity) weights through
    a straight-through estimator, with an optional density penalty, then freeze.
    """
    p = config.prune
    rule = prune_rule(config, model)
    total_epochs = p.rounds * p.epochs_per_round
    if p.method == "scores":
        for name, layer in compressible_layers(model):
            layer.enable_scores(keep_fraction=1.0 - _layer_sparsity(rule, name))
        train(
            model, dataset, config, epochs=total_epochs, learning_rate=p.learning_rate,
            stage="prune/scores", penalty=p.penalty, teacher=teacher,
            hw=hw_loss.HWLoss.from_config(config),
        )  # fmt: skip
        for _, layer in compressible_layers(model):
            layer.freeze_scores()
    elif p.schedule == "gradual":
        steps_per_epoch = -(-len(dataset.train.images) // config.train.batch_size)
        end = max(total_epochs * steps_per_epoch * 2 // 3, 1)
        schedule = prune.gradual(0.0, 1.0, 0, end, max(steps_per_epoch // 2, 1))

        def on_step(step):
            if bool(schedule.is_pruning_step(step)):
                prune.prune_model(model, rule, scale=float(schedule.sparsity(step)))

        train(
            model, dataset, config, epochs=total_epochs, learning_rate=p.learning_rate,
            stage="prune/gradual", on_step=on_step, teacher=teacher,
        )  # fmt: skip
    else:
        rounds = 1 if p.schedule == "one_shot" else p.rounds
        for r in range(1, rounds + 1):
            kept = prune.prune_model(model, rule, scale=r / rounds)
            logging.info("[prune] round %d/%d kept %s", r, rounds, _fmt(kept))
            train(
                model, dataset, config, epochs=p.epochs_per_round, learning_rate=p.learning_rate,
                stage=f"prune/round {r}", teacher=teacher,
            )  # fmt: skip
    return {name: float(jnp.mean(layer.mask[...])) for name, layer in compressible_layers(model)}


def quantize(model, config) -> None:
    """Every layer's survivors -> codes into a 2**bits-entry codebook, by config.share.method.

    'kmeans': Deep Compression Sec. 3, a per-layer k-means codebook whose centroids are
    fine-tuned afterwards. 'linear': the per-layer symmetric int grid of
    share.linear_codebook (levels -(2**(b-1) - 1) .. 2**(b-1) - 1 times one scale, the
    W4A16 baseline at 4 bits), a FrozenCodebook: fine-tuning moves only the biases, so the
    weights stay integers times one scale. EIE decodes one table per layer, so a
    per-output-channel scale cannot run on it; the grid here is per layer.
    """
    method = share_method(config)
    for i, (name, layer) in enumerate(compressible_layers(model)):
        bits = weight_bits(config, name)
        if method == "linear":
            codebook, codes = share.linear_codebook(layer.kernel[...], layer.mask[...], bits)
        else:
            codebook, codes = share.share_weights(
                layer.kernel[...],
                layer.mask[...],
                bits,
                init=config.share.init,
                key=jax.random.key(config.seed + i),
            )
        layer.share(codebook, codes, trainable=method == "kmeans")


def share_and_finetune(model, dataset, config, teacher=None):
    """Weight sharing per layer (`quantize`), then fine-tuning (Deep Compression Sec. 3).

    k-means centroids and biases are fine-tuned; a linear grid is frozen, only biases move.
    """
    quantize(model, config)
    train(
        model, dataset, config, epochs=config.share.finetune_epochs,
        learning_rate=config.share.learning_rate, stage="share/finetune",
        teacher=teacher,
    )  # fmt: skip


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


def fc_stack(model) -> list[hardware.FCLayer]:
    """The compressed FC layers EIE runs, in hardware form, in the model's declared order."""
    return [
        hardware.FCLayer(
            name=name,
            codes=np.asarray(layer.hardware_codes()),
            codebook=np.asarray(layer.codebook[...]),
            bias=np.asarray(layer.bias[...]),
            relu=relu,
        )
        for name, layer, relu in models.eie_layers(model)
    ]


def run_eie_stage(model, dataset, config):
    """Runs every FC layer on EIE over the whole test set; calibrates on training data."""
    layers = fc_stack(model)
    features = lambda x: np.asarray(_fc_input(model, jnp.asarray(x)))
    calib = features(dataset.train.images[: config.eie.calibration_size])
    base = eie.EIEConfig.from_dict(_eie_fields(config), where="config.eie")
    cfgs = hardware.calibrate(layers, calib, base, config.eie.headroom_bits)
    x_test = np.concatenate(
        [
            features(dataset.test.images[s : s + 2000])
            for s in range(0, len(dataset.test.images), 2000)
        ]
    )
    logits, runs = hardware.run_on_eie(layers, x_test, cfgs, config.eie.batch_size)
    reference = hardware.fixed_point_forward(layers, x_test, cfgs)
    labels = np.asarray(dataset.test.labels)
    return dict(
        eie_accuracy=float(np.mean(np.argmax(logits, -1) == labels)),
        fixed_point_accuracy=float(np.mean(np.argmax(reference, -1) == labels)),
        eie_equals_fixed_point=bool(np.array_equal(logits, reference)),
        runs=runs,
    )


@nnx.jit
def _fc_input(model, images):
    return model.fc_input(images)


def _fmt(d):
    return ", ".join(f"{k} {v:.3f}" for k, v in d.items())


# ------------------------------------------------------------------ the whole run


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs every stage, writes WORKDIR/report.{json,md} and checkpoints; returns the report."""
    validate_config(config)
    os.makedirs(workdir, exist_ok=True)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    _check_same_config(config, workdir)
    t0 = time.time()
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
    model = _build_model(config.model, config.seed)
    timings = {}

    def stage(name, fn):
        path = os.path.join(ckpt_dir, f"{name}.npz")
        if os.path.exists(path):
            meta = checkpoint.restore(path, model)
            logging.info("[%s] resumed from %s", name, path)
            return meta
        start = time.time()
        meta = fn() or {}
        timings[name] = time.time() - start
        checkpoint.save(path, model, meta)
        return meta

    test = lambda: accuracy(model, dataset.test.images, dataset.test.labels)
    dense = stage(
        "1_dense",
        lambda: (
            train(model, dataset, config, epochs=config.train.epochs,
                  learning_rate=config.train.learning_rate, stage="dense"),
            dict(accuracy=test()),
        )[1],
    )  # fmt: skip
    logging.info("[dense] test accuracy %.4f", dense["accuracy"])
    # The dense network teaches the compressed one (config.distill; weight 0: no teacher):
    # its logits on the training set, computed once.
    teacher = predict(model, dataset.train.images) if config.distill.weight > 0 else None
    pruned = stage(
        "2_pruned",
        lambda: dict(kept=prune_and_retrain(model, dataset, config, teacher), accuracy=test()),
    )
    logging.info("[pruned] test accuracy %.4f  kept %s", pruned["accuracy"], _fmt(pruned["kept"]))
    shared = stage(
        "3_shared",
        lambda: (share_and_finetune(model, dataset, config, teacher), dict(accuracy=test()))[1],
    )
    logging.info("[shared] test accuracy %.4f", shared["accuracy"])

    report = storage_report(model, config)
    logging.info("storage:\n%s", report.to_markdown())
    start = time.time()
    hw = run_eie_stage(model, dataset, config)
    timings["4_eie"] = time.time() - start
    logging.info(
        "[eie] accuracy %.4f (fixed point %.4f)", hw["eie_accuracy"], hw["fixed_point_accuracy"]
    )

    storage_rows = {row.name: row for row in report.layers}
    result = dict(
        dataset=config.dataset,
        model=config.model,
        dense_accuracy=dense["accuracy"],
        pruned_accuracy=pruned["accuracy"],
        compressed_accuracy=shared["accuracy"],
        eie_accuracy=hw["eie_accuracy"],
        fixed_point_accuracy=hw["fixed_point_accuracy"],
        eie_equals_fixed_point=hw["eie_equals_fixed_point"],
        compression_ratio=report.compression_ratio_pqh,
        compression_ratio_pq=report.compression_ratio_pq,
        compression_ratio_eie=report.compression_ratio_eie,
        storage=report.to_dict(),
        layers={},
        eie_config=_eie_fields(config),
        seconds=dict(timings, total=time.time() - t0),
        config=config.to_dict(),
    )
    runs = {r.name: r for r in hw["runs"]}
    for name, row in storage_rows.items():
        entry = dict(
            weights_kept=row.weights_kept,
            weight_bits=row.weight_bits_pqh,
            index_bits=row.index_bits_pqh,
            weight_bits_pq=row.weight_bits_pq,
            index_bits_pq=row.index_bits_pq,
            codebook_bits=weight_bits(config, name),
        )
        if name in runs:
            run = runs[name]
            entry.update(
                cycles=run.cycles,
                time_us=run.time_us,
                load_efficiency=run.load_efficiency,
                eie_entries=run.num_entries,
                eie_padding=run.num_padding,
                act_frac_bits=run.act_frac_bits,
                weight_frac_bits=run.weight_frac_bits,
            )
        result["layers"][name] = entry
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write(to_markdown(result, report))
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


def _check_same_config(config, workdir) -> None:
    """Writes WORKDIR/config.json, or refuses to resume a workdir made with another config."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved != current:
            changed = sorted(_diff(saved, current))
            raise ValueError(
                f"{workdir} holds a run with another config (fields differ: {', '.join(changed)});"
                " use a new --workdir or delete the old one"
            )
        return
    with open(path + ".tmp", "w") as f:
        json.dump(current, f, indent=2)
    os.replace(path + ".tmp", path)


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{prefix}{key}.")
    elif a != b:
        yield prefix.rstrip(".")


def to_markdown(result, report) -> str:
    lines = [
        f"# {result['model']} on {result['dataset']}",
        "",
        "| stage | test accuracy |",
        "|---|---|",
        f"| dense | {result['dense_accuracy']:.4f} |",
        f"| pruned | {result['pruned_accuracy']:.4f} |",
        f"| pruned + shared (compressed) | {result['compressed_accuracy']:.4f} |",
        f"| compressed on EIE (16-bit fixed point) | {result['eie_accuracy']:.4f} |",
        "",
        f"Compression: {result['compression_ratio']:.1f}x (P+Q+H), "
        f"{result['compression_ratio_pq']:.1f}x (P+Q), {result['compression_ratio_eie']:.1f}x "
        "(EIE format).",
        "",
        "## Storage (Deep Compression Tables 2-3)",
        "",
        report.to_markdown(),
        "",
        "## EIE ({num_pes} PEs, FIFO {fifo_depth}, {clock_mhz:.0f} MHz)".format(
            **result["eie_config"]
        ),
        "",
        "Mean over the test set.",
        "",
        "| layer | cycles | µs | load efficiency | entries | padding | act frac bits |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, layer in result["layers"].items():
        if "cycles" in layer:
            lines.append(
                f"| {name} | {layer['cycles']:.1f} | {layer['time_us']:.3f} "
                f"| {layer['load_efficiency']:.3f} | {layer['eie_entries']} "
                f"| {layer['eie_padding']} | {layer['act_frac_bits']} |"
            )
    return "\n".join(lines) + "\n"
