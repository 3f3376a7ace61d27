"""Pruning then quantization, composed: what EIE runs, reached from a trained model in one
shot instead of by gradual pruning and retraining.

A job (`pruned_kmeans`, one per calibrated rule and target of config.compose) prunes every
FC matrix of a copy of the dense model once with a calibrated rule of the pruning registry
(`compression.prune.calibrated_prune`: SparseGPT or Wanda, layer after layer on the inputs
each receives from the model pruned so far, config.quantize.calibration_windows training
windows), then gives each layer one table of 2**b entries (entry 0 the pruned zero) over
its survivors at every config.compose.bits:

  kmeans_layer      plain k-means (`kmeans.share_model`, Deep Compression)
  squeezellm_layer  Fisher-weighted k-means (sensitivity.py), the Fisher taken on the
                    pruned model

and, when config.compose.finetune, fine-tunes the centroids (config.share: steps, rate).
Rows: the pruned float model (`bits.sparse_float`) and each table with and without the
fine-tune, in Deep Compression's format (relative indices: `bits.layer_codebook` with
config.storage.index_bits) and in EIE's (`bits.layer_codebook_eie`, pointers included).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression import prune, quantizers
from eie_jax.compression.layers import compressible_layers, to_hardware
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count
from eie_jax.studies.lm.methods import kmeans, sensitivity

QUANTIZERS = ("kmeans_layer", "squeezellm_layer")


def parse_target(target: str) -> dict:
    """'0.7' -> dict(sparsity=0.7); '2:4' -> dict(n=2, m=4)."""
    if ":" in target:
        n, m = target.split(":")
        return dict(n=int(n), m=int(m))
    return dict(sparsity=float(target))


def target_ok(target) -> bool:
    """A sparsity in (0, 1) or N:M with 1 <= N < M, as a string."""
    try:
        parsed = parse_target(target)
    except (TypeError, ValueError, AttributeError):
        return False
    if "n" in parsed:
        return 1 <= parsed["n"] < parsed["m"]
    return 0 < parsed["sparsity"] < 1


def sparsity_of(target: str) -> float:
    parsed = parse_target(target)
    return 1 - parsed["n"] / parsed["m"] if "n" in parsed else parsed["sparsity"]


def prune_model(model, corpus, config, rule: str, target: str, draw: int = 0) -> None:
    """Prunes the model in place by the calibrated rule on the calibration windows of
    draw `draw` (`training.calibration_windows`)."""
    inputs, _ = lm.calibration_windows(corpus, config, draw)
    prune.calibrated_prune(model, jnp.asarray(inputs), rule, **parse_target(target))


def share(model, corpus, config, quantizer: str, bits: int, draw: int = 0, fisher=None) -> None:
    """One table per layer over its survivors (entry 0 the pruned zero), in place;
    squeezellm_layer weighs by `fisher` ({layer: (M, K)}; None: computed on the model, on
    the calibration windows of draw `draw`)."""
    if quantizer == "kmeans_layer":
        kmeans.share_model(model, bits, config.share.init, config.seed)
        return
    if fisher is None:
        fisher = sensitivity.calibration_fisher(model, corpus, config, draw)
    for i, (name, layer) in enumerate(compressible_layers(model)):
        w = np.asarray(to_hardware(layer.kernel[...]))
        mask = np.asarray(layer.hardware_mask())
        q = quantizers.quantize(
            quantizer, w, mask, bits, calibration=fisher[name], init=config.share.init,
            key=jax.random.key(config.seed + i),
        )  # fmt: skip
        layer.share(q.codebook, np.asarray(layer.from_matrix(q.codes)))


def rows(job, model, corpus, config, row, draw: int = 0) -> list[dict]:
    """The job's rows (see the module docstring) on calibration draw `draw`; `row` scores a
    model as run_job's does."""
    rule, target = job.rule, job.target
    s, st, c = sparsity_of(target), config.storage, config.compose
    prune_model(model, corpus, config, rule, target, draw)
    tag = f"{rule}_{target}"
    out = [row(tag, 32, bit_count.sparse_model(model, st.index_bits), sparsity=s, m=model)]
    fisher = None  # of the pruned model, once for every bit width
    if c.quantizer in sensitivity.FISHER:
        fisher = sensitivity.calibration_fisher(model, corpus, config, draw)
    for bits in job.bits:
        shared = lm.copy(model)
        share(shared, corpus, config, c.quantizer, bits, draw, fisher)
        out += kmeans.table_rows(
            shared, f"{tag}_{c.quantizer}_b{bits}", bits, sparsity=s,
            index_bits=st.index_bits, config=config, corpus=corpus, row=row,
            finetune=c.finetune,
        )  # fmt: skip
    for r in out:  # what the report groups them by
        r.update(rule=rule, target=target, quantizer=None if r["bits"] == 32 else c.quantizer)
    return out
