"""Weight compression methods of the W4A16 study, by name, each from the dense model.

    kmeans_layer      per-layer k-means codebook (Deep Compression / EIE) at 0 % and every
                      config.prune.sparsities, post-training and with centroid fine-tuning
    kmeans_row        per-output-row codebooks (SqueezeLLM-like; not on EIE)
    squeezellm_layer  per-layer Fisher-weighted k-means codebook (SqueezeLLM's
                      sensitivity weights, one table: on EIE; sensitivity.py)
    squeezellm_row    per-output-row Fisher-weighted k-means codebooks (not on EIE)
    pruned_kmeans     one-shot calibrated pruning (SparseGPT, Wanda) then per-layer
                      (Fisher-weighted) k-means, with and without centroid fine-tuning,
                      per rule and target of config.compose (composed.py); on EIE
    dense_retrain     control: the dense model retrained as long as pruning retrains
    rtn_{sym,asym}_{channel,g32,g128}   linear int round to nearest (linear.py)
    gptq_g128, awq_g128                 qwix's GPTQ and AWQ, symmetric, group 128

Every method runs at each of config.quantize.bits. A method over matrices is a quantizer
of the one registry (`eie_jax.compression.quantizers`): this module registers the RTN,
GPTQ, AWQ and per-row k-means quantizers there, and any quantizer registered by a user's
module is a method too (`methods()`); `run_job` writes each layer's `Quantized.weights`
into its MaskedLinear (kernel = weights.T) and scores the model. A calibrated quantizer
gets the layer's calibration (`calibration_kind`): its inputs (N, K) (GPTQ, AWQ), or, for
one registered with `sensitivity.register` (sensitivity.FISHER), each weight's Fisher
information (M, K) on the same calibration windows. Per-layer k-means is a model-level job
(pruning, sharing and fine-tuning, training.py and kmeans.py).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from eie_jax.compression import quantizers
from eie_jax.compression.layers import compressible_layers, to_hardware
from eie_jax.studies.lm import bootstrap
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count
from eie_jax.studies.lm.methods import composed, kmeans, linear, qwix_ptq, sensitivity


def _matrix(name: str, *, calibrated: bool = False):
    """Registers fn(w, bits, x) -> (w_hat, stored bits) as a quantizer of the one registry."""

    def add(fn):
        def quantizer(w, mask, bits, *, calibration=None, init=None, key=None):
            del init, key
            w = np.asarray(w) if mask is None else np.where(mask, w, 0.0)
            w_hat, stored = fn(w, bits, calibration)
            return quantizers.Quantized(weights=np.asarray(w_hat), stored_bits=int(stored))

        quantizers.register(name, calibrated=calibrated)(quantizer)
        MATRIX.append(name)
        return fn

    return add


MATRIX: list[str] = []  # the methods this module registers, in the study's order


@_matrix("kmeans_row")
def _kmeans_row(w, bits, x):
    w_hat, _, _ = kmeans.row_kmeans_np(w, bits)
    return w_hat, bit_count.row_codebook(w.shape, bits)


MATRIX.extend(("squeezellm_layer", "squeezellm_row"))  # registered by sensitivity.py


def _rtn(group, symmetric):
    def fn(w, bits, x):
        g = w.shape[1] if group is None else group
        w_hat = np.asarray(linear.rtn(w, bits, g, symmetric)[0])
        return w_hat, bit_count.linear_groups(w.shape, bits, g, asymmetric=not symmetric)

    return fn


for _sym in ("sym", "asym"):
    for _group, _label in ((None, "channel"), (32, "g32"), (128, "g128")):
        _matrix(f"rtn_{_sym}_{_label}")(_rtn(_group, _sym == "sym"))


@_matrix("gptq_g128", calibrated=True)
def _gptq(w, bits, x):
    w_hat = np.asarray(qwix_ptq.gptq(w, qwix_ptq.hessian(x), bits, 128))
    return w_hat, bit_count.linear_groups(w.shape, bits, 128, asymmetric=False)


@_matrix("awq_g128", calibrated=True)
def _awq(w, bits, x):
    w_hat, _ = qwix_ptq.awq(w, x, bits, 128)
    stored = bit_count.linear_groups(w.shape, bits, 128, asymmetric=False, input_scales=True)
    return np.asarray(w_hat), stored


# dense_retrain: the control of pruning, the dense model trained on through the pruning
# schedule's steps and time budget at sparsity 0 (pruning's retraining is more training).
METHODS = ("kmeans_layer", *MATRIX, "pruned_kmeans", "dense_retrain")


def methods() -> tuple[str, ...]:
    """Every method a study may name: its own and every quantizer of the one registry
    (a quantizer registered by your own module runs per matrix, like RTN)."""
    return (*METHODS, *(name for name in quantizers.REGISTRY if name not in METHODS))


GROUPS = {"rtn_sym_g32": 32, "rtn_asym_g32": 32, "rtn_sym_g128": 128, "rtn_asym_g128": 128,
          "gptq_g128": 128, "awq_g128": 128}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work that ends in one or more table rows; `name` keys resumption."""

    name: str
    method: str
    bits: tuple[int, ...]
    sparsity: float = 0.0
    rule: str | None = None  # pruned_kmeans: the calibrated pruning rule and its target
    target: str | None = None

    @property
    def needs_calibration(self) -> bool:
        q = quantizers.REGISTRY.get(self.method)
        return q is not None and q.calibrated

    @property
    def uses_calibration_windows(self) -> bool:
        """Whether its rows depend on the calibration windows (so on their draw): a
        calibrated quantizer's, or calibrated pruning's."""
        return self.needs_calibration or self.method == "pruned_kmeans"

    @property
    def calibration(self) -> str | None:
        return calibration_kind(self.method)


def calibration_kind(method: str) -> str | None:
    """What the method's quantizer takes as `calibration`: None (nothing), "inputs" (each
    layer's calibration inputs (N, K): GPTQ, AWQ) or "fisher" (each weight's Fisher
    information (M, K), `sensitivity.fisher`: the quantizers of sensitivity.FISHER)."""
    q = quantizers.REGISTRY.get(method)
    if q is None or not q.calibrated:
        return None
    return "fisher" if method in sensitivity.FISHER else "inputs"


class Calibration:
    """The dense model's calibration data of one draw of windows
    (`training.calibration_windows`), each kind computed on first use and kept: `inputs`
    {layer: (N, K)} and `fisher` {layer: (M, K)}. Give run_job one of these per draw for
    all the jobs of a study."""

    def __init__(self, model, corpus, config, draw: int = 0):
        self.model, self.corpus, self.config, self.draw = model, corpus, config, draw

    @functools.cached_property
    def inputs(self) -> dict[str, np.ndarray]:
        return lm.calibration_inputs(self.model, self.corpus, self.config, self.draw)

    @functools.cached_property
    def fisher(self) -> dict[str, np.ndarray]:
        return sensitivity.calibration_fisher(self.model, self.corpus, self.config, self.draw)


def _calibration(kind, calib, model, corpus, config):
    """{layer: calibration} of the kind, from a `Calibration`, or from a plain dict of
    inputs (the inputs kind) or else from the model itself (still the dense copy)."""
    if kind is None:
        return None
    if isinstance(calib, Calibration):
        return getattr(calib, kind)
    if kind == "inputs":
        return calib
    return sensitivity.calibration_fisher(model, corpus, config)


def jobs(method: str, config) -> list[Job]:
    bits = tuple(config.quantize.bits)
    if method == "kmeans_layer":
        sparsities = (0.0, *config.prune.sparsities)
        return [Job(f"kmeans_layer_s{s:.2f}", method, bits, s) for s in sparsities]
    if method == "dense_retrain":
        return [Job("dense_retrained", method, (32,))]
    if method == "pruned_kmeans":
        c = config.compose
        return [
            Job(f"{r}_{t}", method, tuple(c.bits), composed.sparsity_of(t), rule=r, target=t)
            for r in c.rules
            for t in c.targets
        ]
    return [Job(f"{method}_b{b}", method, (b,)) for b in bits]


def run_job(job: Job, model, corpus, config, calib) -> list[dict]:
    """The job's rows: method, bits, sparsity, test nats/char, bits per weight, model KB,
    and each test window's nats/char (`test_windows`) when `bootstrap.enabled(config)`
    (the test nats/char is then their mean, from the same single pass).
    calib: a `Calibration` of the dense model, or {layer: inputs} (None when no job needs
    them); a Fisher-calibrated method given no `Calibration` computes the Fisher from
    `model` before changing it."""
    num_weights = sum(int(np.prod(lay.kernel_shape)) for _, lay in compressible_layers(model))
    other = bit_count.other_bits(model)

    def row(name, bits, stored, *, sparsity=0.0, finetuned=False, eie=None, on_eie=False, m=None):
        # one pass over the test windows: their mean is the test loss when they are kept
        windows = bootstrap.result_windows(m, corpus, config)
        if windows is None:
            nats = lm.evaluate(m, corpus.test, config.data.context, config.data.eval_windows)
        else:
            nats = float(np.mean(windows))
        scored = dict(
            name=name, method=job.method, bits=bits, sparsity=sparsity, finetuned=finetuned,
            test_nats=nats, bits_per_weight=stored / num_weights,
            eie_bits_per_weight=None if eie is None else eie / num_weights,
            model_kb=(stored + other) / 8 / 1024, runs_on_eie=on_eie,
        )  # fmt: skip
        return scored if windows is None else dict(scored, test_windows=windows)

    if job.method == "kmeans_layer":
        return _kmeans_layer_rows(job, model, corpus, config, row)
    if job.method == "pruned_kmeans":
        return composed.rows(job, model, corpus, config, row, getattr(calib, "draw", 0))
    if job.method == "dense_retrain":
        lm.prune_gradually(model, corpus, config, 0.0, seed=config.seed)
        return [row(job.name, 32, 32 * num_weights, m=model)]
    spec = quantizers.get(job.method, "config.quantize.methods")
    (bits,) = job.bits
    calibration = _calibration(job.calibration, calib, model, corpus, config)
    st = config.storage
    stored, eie = 0, 0 if spec.one_table else None
    for i, (name, layer) in enumerate(compressible_layers(model)):
        w = np.asarray(to_hardware(layer.kernel[...]))
        data = None if calibration is None else calibration[name]
        q = quantizers.quantize(
            job.method, w, None, bits, calibration=data, init=config.share.init,
            key=jax.random.key(config.seed + i),
        )  # fmt: skip
        layer.kernel[...] = jnp.asarray(q.weights.T)
        stored += q.stored_bits
        if eie is not None:  # one table per layer: EIE's format of its codes
            eie += bit_count.layer_codebook_eie(q.codes, bits, st.eie_num_pes, st.eie_index_bits)
    return [row(job.name, bits, stored, eie=eie, on_eie=spec.one_table, m=model)]


def merge_draws(per_draw: list[list[dict]]) -> list[dict]:
    """One job's rows from several calibration draws -> one row each: draw 0's fields,
    test nats/char (and bits, which pruning may move by a filler) averaged over draws,
    each draw's nats in `draw_nats`, and `test_windows` one row per draw (the bootstrap
    resamples them, bootstrap.paired_interval)."""
    if len(per_draw) == 1:
        return per_draw[0]
    merged = []
    for rows in zip(*per_draw, strict=True):
        row = dict(rows[0], draws=len(rows), draw_nats=[r["test_nats"] for r in rows])
        for key in ("test_nats", "bits_per_weight", "eie_bits_per_weight", "model_kb"):
            if row.get(key) is not None:
                row[key] = float(np.mean([r[key] for r in rows]))
        if "test_windows" in row:
            row["test_windows"] = [r["test_windows"] for r in rows]
        merged.append(row)
    return merged


def _kmeans_layer_rows(job, model, corpus, config, row):
    rows = []
    s = job.sparsity
    if s > 0:
        record = lm.prune_gradually(model, corpus, config, s, seed=config.seed)
        logging.info(
            "[%s] pruned in %d steps, %.0f s", job.name, record["steps"], record["seconds"]
        )
        stored = bit_count.sparse_model(model, config.storage.index_bits)
        rows.append(row(f"pruned_s{s:.2f}", 32, stored, sparsity=s, m=model))
    for bits in job.bits:
        shared = lm.copy(model)
        kmeans.share_model(shared, bits, config.share.init, config.seed)
        rows += kmeans.table_rows(
            shared, f"kmeans_layer_b{bits}_s{s:.2f}", bits, sparsity=s,
            index_bits=config.storage.index_bits if s else None, config=config,
            corpus=corpus, row=row,
        )  # fmt: skip
    return rows
