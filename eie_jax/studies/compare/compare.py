"""Hardware-aware compression compared on the EIE model: which masks, which 4-bit weights.

Deep Compression (Han, Mao, Dally, ICLR 2016) minimises bits; EIE (Han et al., ISCA
2016) is as fast as its slowest PE. This runs one network under several pruning methods
(config.methods: Deep Compression's magnitude pruning, ESE's load-balance-aware pruning
(Han et al., FPGA 2017), NVIDIA's 2:4 (Mishra et al. 2021), learned masks trained against
EIE's expected cycles (hw_loss.py)), each with several weight quantisers
(config.quantizers: the k-means codebook of Deep Compression Sec. 3 and a linear int4
grid as in GPTQ/AWQ's W4A16), at matched overall density, and measures every result on
EIE at several PE counts: accuracy in EIE's 16-bit fixed point, compression (P+Q+H),
cycles, load efficiency and padding.

Each (method, quantiser) run is `pipeline.train_and_evaluate` on its own config; runs
share work through the stage checkpoints: the dense network is trained once, and each
method's pruned network once, then copied into the runs that start from it. Stages,
runs and results are keyed by a fingerprint of the config fields they depend on, so a
rerun skips finished runs and a changed method retrains only what it changes.

WORKDIR/compare.json (every number), WORKDIR/compare.md (the table and the verdicts that
config.verdicts declares, see compare_report.py) and
WORKDIR/accuracy_vs_cycles_<N>pes.png (accuracy against EIE cycles, Pareto front).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from eie_jax import eie, models
from eie_jax.api import figures, on_eie
from eie_jax.compression import share
from eie_jax.compression.layers import compressible_layers
from eie_jax.data import idx as data
from eie_jax.eie import fc_layer as hardware
from eie_jax.eie import fixed_point, metrics
from eie_jax.studies.compare import report as compare_report
from eie_jax.studies.compress import config as run_config
from eie_jax.studies.compress import pipeline
from eie_jax.training import checkpoint
from eie_jax.utils import schema
from eie_jax.utils import workdir as workdir_lib
from eie_jax.utils.cli import UserError

# The fields the dense stage depends on; methods may not change them (it is shared).
DENSE_FIELDS = ("model", "dataset", "data_dir", "validation_size", "seed", "train")
# The fields only the sharing stage and the evaluation read; quantisers may change only share.
AFTER_PRUNING_FIELDS = ("share", "storage", "eie")
QUANTIZER_FIELDS = ("share",)
# Hex digits of the fingerprints that name shared stages, runs and results.
KEY_DIGITS = 12


# ------------------------------------------------------------------ configuration


def section() -> schema.Section:
    """The schema of a comparison: a compression run's config (base), the methods and the
    quantisers (overrides of it), the PE counts and the verdicts (compare_report)."""
    entry = schema.Section(
        dict(
            label=schema.string(""),
            overrides=schema.anything({}, "fields of config.base (checked against it)"),
        )
    )
    return schema.Section(
        dict(
            base=run_config.section(),
            methods=schema.Table(entry),
            order=schema.sequence((), schema.string(""), nonempty=False),
            quantizers=schema.Table(schema.anything({}, "share.* fields of config.base")),
            # The first PE count is the design point of the runs, the verdicts and the plot.
            num_pes=schema.sequence((64, 16), schema.integer(64, lo=1)),
            verdicts=schema.Table(
                schema.anything({}, "a verdict (eie_jax/studies/compare/report.py)")
            ),
        )
    )


def run_configs(config) -> list[dict]:
    """[{method, quantizer, label, config}] for every method (in config.order) x quantiser.

    Raises UserError naming the field when a method changes a dense-stage field, a
    quantiser changes anything but share.*, or a run's config is invalid.
    """
    schema.check(config, section())
    compare_report.check_verdicts(config)
    if not config.methods or not config.quantizers:
        raise UserError("config.methods and config.quantizers: need at least one entry each")
    num_pes = tuple(config.num_pes)
    if config.base.eie.num_pes != num_pes[0]:
        raise UserError(
            f"config.base.eie.num_pes={config.base.eie.num_pes}: the runs take their PE count "
            f"from config.num_pes[0]={num_pes[0]}; set config.num_pes instead"
        )
    order = tuple(config.get("order", None) or sorted(config.methods))
    if sorted(order) != sorted(config.methods):
        raise UserError(
            f"config.order={order!r}: must list every method of config.methods once: "
            f"{sorted(config.methods)}"
        )
    runs = []
    for method in order:
        spec = config.methods[method]
        for key in spec.overrides:
            if key in DENSE_FIELDS:
                raise UserError(
                    f"config.methods.{method}.overrides.{key}: methods share the dense stage and "
                    f"may not change {DENSE_FIELDS}"
                )
        method_config = workdir_lib.apply_overrides(
            config.base, spec.overrides, f"config.methods.{method}.overrides"
        )
        for quantizer, q_overrides in config.quantizers.items():
            for key in q_overrides:
                if key not in QUANTIZER_FIELDS:
                    raise UserError(
                        f"config.quantizers.{quantizer}.{key}: quantisers share the pruned stage "
                        f"and may change only {QUANTIZER_FIELDS}"
                    )
            run = workdir_lib.apply_overrides(
                method_config, q_overrides, f"config.quantizers.{quantizer}"
            )
            run.eie.num_pes = num_pes[0]
            pipeline.validate_config(run)
            runs.append(dict(method=method, quantizer=quantizer, label=spec.label, config=run))
    return runs


def _subset(run_config, keep=None, drop=()) -> dict:
    values = json.loads(run_config.to_json())
    values["train"].pop("checkpoint_minutes", None)  # when a stage checkpoints: same results
    return {k: v for k, v in values.items() if (keep is None or k in keep) and k not in drop}


def stage_keys(run_config) -> dict:
    """Fingerprints of what each stage depends on: dense, pruned, and the whole run."""
    return dict(
        dense=workdir_lib.fingerprint(_subset(run_config, keep=DENSE_FIELDS), KEY_DIGITS),
        pruned=workdir_lib.fingerprint(_subset(run_config, drop=AFTER_PRUNING_FIELDS), KEY_DIGITS),
        run=workdir_lib.fingerprint(_subset(run_config), KEY_DIGITS),
    )


# ------------------------------------------------------------------ one run


def _restore(config, path):
    model = models.get_model(config.model, rngs=nnx.Rngs(config.seed))
    checkpoint.restore(path, model)
    return model


def eie_inputs(model, dataset, report) -> list[tuple[hardware.FCLayer, eie.EIEConfig, np.ndarray]]:
    """[(layer, its EIE config, which inputs are nonzero (B, K))] of the layers EIE ran.

    The inputs are the ones EIE sees: the model's own forward over the test set with each
    EIE layer in fixed point (`on_eie.run_fixed_point`, which equals EIE's outputs bit for
    bit), with the fractional bits the run calibrated (report['layers'][name]), in the
    order the forward calls them. Which inputs are nonzero does not depend on the PE count.
    """
    base = eie.EIEConfig.from_dict(report["eie_config"])
    programs = {}
    for name, layer in compressible_layers(model):
        entry = report["layers"].get(name, {})
        if "act_frac_bits" not in entry:
            continue
        fc = hardware.FCLayer(
            name=name,
            codes=np.asarray(layer.hardware_codes()),
            codebook=np.asarray(layer.codebook[...]),
            bias=np.asarray(layer.bias[...]),
            relu=False,
        )
        cfg = base.replace(
            weight_bits=fc.weight_bits,
            act_frac_bits=entry["act_frac_bits"],
            weight_frac_bits=entry["weight_frac_bits"],
        )
        programs[name] = (fc, cfg)
    run_config = ml_collections.ConfigDict(report["config"])
    _, recorded = on_eie.run_fixed_point(
        model, dataset.test.images, programs=programs, batch_size=run_config.eie.batch_size,
        rules=pipeline.eie_rules(run_config), record=True,
    )  # fmt: skip
    out = []
    for name, runs in recorded.items():
        fc, cfg = programs[name]
        active = np.asarray(fixed_point.quantize(jnp.asarray(runs["inputs"]), cfg.act_frac_bits))
        out.append((fc, cfg, active != 0))
    return out


def cycles_on(layer, cfg, active, batch_size=2000) -> figures.LayerFigures:
    """A layer's EIE figures at cfg.num_pes for inputs whose nonzeros are `active` (B, K).

    The datapath's timing recurrence alone (eie.cycles_from_counts, the loop simulate()
    runs beside its arithmetic): the outputs do not depend on the PE count, so another PE
    count needs only the cycles.
    """
    counts = eie.column_counts(layer.codes, cfg.num_pes, cfg.index_bits, cfg.weight_bits)
    out = figures.LayerFigures.from_counts(
        layer.name, counts, cfg, shape=layer.codes.shape, nonzeros=np.count_nonzero(layer.codes)
    )
    device_counts = jnp.asarray(counts)
    history = eie.history_size(cfg.fifo_depth)
    for start in range(0, len(active), batch_size):
        batch = active[start : start + batch_size]
        timed = metrics.batched_cycles(
            device_counts, jnp.asarray(batch), cfg.fifo_depth, history=history
        )
        pe_cycles, pe_busy = jax.device_get(timed)
        out.add_timing(pe_cycles, pe_busy, batch)
    return out


def eie_summary(runs: list[figures.LayerFigures], broadcasts: list[float], clock_mhz) -> dict:
    """The FC stack on EIE at one PE count, from its layers' figures (means per inference).

    load_efficiency is the cycle-weighted mean of the layers' (mean busy PE / cycles);
    its ceiling replaces each layer's cycles by the least any mask with the same entries
    could take, max(broadcasts, busy): every broadcast costs at least one cycle (EIE
    Sec. III-D), so small layers on many PEs cannot be efficient however balanced.
    """
    layer_cycles = [f.per_vector(f.cycles) for f in runs]
    cycles = sum(layer_cycles)
    busy = [f.load_efficiency * c for f, c in zip(runs, layer_cycles, strict=True)]
    entries = sum(f.entries for f in runs)
    floor = sum(max(b, u) for b, u in zip(broadcasts, busy, strict=True))
    return dict(
        cycles=cycles,
        time_us=cycles / clock_mhz,
        load_efficiency=sum(busy) / cycles if cycles else 0.0,
        load_efficiency_ceiling=sum(busy) / floor if floor else 0.0,
        padding_share=sum(f.padding for f in runs) / entries if entries else 0.0,
        entries=entries,
        layers={
            f.name: dict(cycles=c, load_efficiency=f.load_efficiency, padding=f.padding)
            for f, c in zip(runs, layer_cycles, strict=True)
        },
    )


def per_channel_int4_accuracy(model, dataset, config) -> float:
    """Float accuracy of the pruned model with per-output-channel symmetric linear weights.

    share.linear_quantize(axis=-1): one scale per output channel, round to nearest, no
    fine-tuning. It needs one scale per row, which EIE's one codebook per layer cannot
    hold, so this is reported beside the EIE runs, not run on EIE.
    """
    for name, layer in compressible_layers(model):
        bits = pipeline.weight_bits(config, name)
        levels, scales = share.linear_quantize(layer.kernel[...], layer.mask[...], bits, axis=-1)
        layer.kernel[...] = levels * scales
    return pipeline.accuracy(model, dataset.test.images, dataset.test.labels)


def evaluate_run(run_config, ckpt_dir, report, dataset, num_pes) -> dict:
    """The row of one run: its report at num_pes[0], and EIE's timing at the other PE counts
    (same outputs and accuracy: the arithmetic does not depend on the PE count)."""
    start = time.time()
    model = _restore(run_config, os.path.join(ckpt_dir, "3_shared"))
    inputs = eie_inputs(model, dataset, report)
    broadcasts = [float(active.sum(axis=1).mean()) for _, _, active in inputs]
    clock = run_config.eie.clock_mhz
    hw = pipeline.stage_result(ckpt_dir, "4_eie")  # the typed EIE stage result
    by_pes = {str(num_pes[0]): eie_summary(hw.runs, broadcasts, clock)}
    for n in num_pes[1:]:
        runs = [cycles_on(layer, cfg.replace(num_pes=n), active) for layer, cfg, active in inputs]
        by_pes[str(n)] = eie_summary(runs, broadcasts, clock)

    pruned = os.path.join(ckpt_dir, "2_pruned")
    row = dict(
        weights_kept=report["storage"]["weights_kept"],
        layers_kept={k: v["weights_kept"] for k, v in report["layers"].items()},
        dense_accuracy=report["dense_accuracy"],
        pruned_accuracy=report["pruned_accuracy"],
        quantized_accuracy=report["quantized_accuracy"],
        compressed_accuracy=report["compressed_accuracy"],
        eie_accuracy=report["eie_accuracy"],
        eie_equals_fixed_point=report["eie_equals_fixed_point"],
        compression_ratio=report["compression_ratio"],
        compression_ratio_pq=report["compression_ratio_pq"],
        broadcasts=broadcasts,
        eie=by_pes,
    )
    if pipeline.share_method(run_config) == "linear":
        row["per_channel_int4_accuracy"] = per_channel_int4_accuracy(
            _restore(run_config, pruned), dataset, run_config
        )
    row["seconds"] = dict(report["seconds"], extra_eie=time.time() - start)
    return row


def _copy_if_missing(src, dst) -> bool:
    """Copies a stage checkpoint (a directory) unless dst has one; via a temporary name."""
    if os.path.isdir(src) and not os.path.exists(dst):
        shutil.rmtree(dst + ".tmp", ignore_errors=True)
        shutil.copytree(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
        return True
    return False


def run_one(run, workdir, dataset, num_pes) -> dict:
    """One (method, quantiser) run, resumed from the shared dense and pruned stages."""
    keys = stage_keys(run["config"])
    name = f"{run['method']}-{run['quantizer']}"
    result_path = os.path.join(workdir, "results", f"{name}-{keys['run']}.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    run_dir = os.path.join(workdir, "runs", f"{name}-{keys['run']}")
    ckpt = os.path.join(run_dir, "checkpoints")
    shared = {
        "1_dense": os.path.join(workdir, "stages", f"dense-{keys['dense']}"),
        "2_pruned": os.path.join(workdir, "stages", f"{run['method']}-pruned-{keys['pruned']}"),
    }
    for stage, path in shared.items():
        if _copy_if_missing(path, os.path.join(ckpt, stage)):
            logging.info("[compare] %s: %s from %s", name, stage, path)
    report = pipeline.train_and_evaluate(run["config"], run_dir)
    for stage, path in shared.items():
        _copy_if_missing(os.path.join(ckpt, stage), path)
    row = dict(
        name=name,
        method=run["method"],
        quantizer=run["quantizer"],
        label=run["label"],
        **evaluate_run(run["config"], ckpt, report, dataset, num_pes),
        config=json.loads(run["config"].to_json()),
    )
    os.makedirs(os.path.dirname(result_path), exist_ok=True)
    workdir_lib.write_json_atomic(result_path, row)
    return row


# ------------------------------------------------------------------ the comparison


def run_comparison(config, workdir: str) -> dict:
    """Every method x quantiser (skipping finished ones); writes compare.{json,md} and the PNG."""
    runs = run_configs(config)
    base = config.base
    dataset = data.load_dataset(
        base.dataset, base.data_dir or None, validation_size=base.validation_size, seed=base.seed
    )
    # Results are keyed by what each stage depends on: any config may resume here.
    with workdir_lib.session(workdir, "compare"):
        return _run_comparison(config, runs, workdir, dataset)


def _run_comparison(config, runs, workdir: str, dataset) -> dict:
    start = time.time()
    num_pes = tuple(config.num_pes)
    base = config.base
    rows = []
    for i, run in enumerate(runs):
        t = time.time()
        logging.info(
            "[compare] run %d/%d: %s + %s", i + 1, len(runs), run["method"], run["quantizer"]
        )
        row = run_one(run, workdir, dataset, num_pes)
        rows.append(row)
        first = row["eie"][str(num_pes[0])]
        logging.info(
            "[compare] done %d/%d %s: EIE acc %.4f, %.1f cycles at %d PEs, %.1fx (%.0f s)",
            i + 1, len(runs), row["name"], row["eie_accuracy"], first["cycles"], num_pes[0],
            row["compression_ratio"], time.time() - t,
        )  # fmt: skip
    result = dict(
        num_pes=list(num_pes),
        fifo_depth=base.eie.fifo_depth,
        clock_mhz=base.eie.clock_mhz,
        rows=rows,
        verdicts=compare_report.verdicts(rows, config),
        seconds=time.time() - start,
        train_seconds=sum(r["seconds"]["total"] + r["seconds"]["extra_eie"] for r in rows),
    )
    with open(os.path.join(workdir, "compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    result["plot"] = compare_report.plot(result, workdir)
    with open(os.path.join(workdir, "compare.md"), "w") as f:
        f.write(compare_report.to_markdown(result, config))
    return result
