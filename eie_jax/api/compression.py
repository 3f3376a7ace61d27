"""The library API on any Flax NNX model: prune, share, retrain in your own loop, report.

    import eie_jax
    eie_jax.make_compressible(model)                  # nnx.Linear / Conv / ... gain masks
    eie_jax.prune_weights(model, sparsity=0.9)        # one-shot, any registered rule
    optimizer = eie_jax.Optimizer(model, optax.adamw(1e-3))   # masks re-applied on update
    ...                                               # your own training loop
    eie_jax.share_weights(model, bits=4)              # k-means codes + codebook Param
    optimizer = eie_jax.Optimizer(model, optax.adam(1e-4))    # centroid fine-tuning
    outputs, report = eie_jax.run_on_eie(model, x, calibration=x_train[:1000])
    print(eie_jax.storage_report(model).to_markdown())

Rules are `[(regex, overrides)]` matched with `re.fullmatch` on '.'-joined layer names,
first match wins; `None` as the overrides leaves a layer out. Each function names the
overrides it reads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression import prune, quantizers, share, storage
from eie_jax.compression.compressible import check_rules, match_rule
from eie_jax.compression.layers import Optimizer, apply_masks, compressible_layers
from eie_jax.compression.prune.schedules import Schedule, cubic_sparsity, gradual
from eie_jax.utils.cli import UserError


def _layers(model, where: str):
    layers = compressible_layers(model)
    if not layers:
        raise UserError(
            f"{where}: the model has no compressible layer; call eie_jax.make_compressible first"
        )
    return layers


def prune_weights(
    model,
    sparsity: float = 0.9,
    rules=None,
    *,
    score: str = "magnitude",
    structure: str = "unstructured",
    distribution: str = "per_layer",
    scale: float = 1.0,
    seed: int = 0,
    **settings,
) -> dict[str, float]:
    """Prunes every compressible layer once, in place; returns {layer: fraction kept}.

    sparsity: each layer's target (or the global one for distribution="global");
    score / structure / distribution: names in the pruning registry (`eie_jax.compression.prune`:
    magnitude or random scores; unstructured, std, balanced (EIE's per-PE counts) or n_m
    structures), `settings` their further settings (e.g. n=2, m=4). Rules' overrides are
    any per-layer setting (`sparsity`, ...); `None` leaves the layer unpruned. scale: the
    fraction of the way to each target (a schedule's progress). Masks only lose entries:
    weights already pruned stay pruned.
    """
    layers = _layers(model, "prune_weights")
    per_layer = {k for k, s in prune.all_settings().items() if s.per_layer}
    rules = check_rules(rules, per_layer | {"structure"}, "prune_weights")
    overrides = {name: match_rule(rules, name) for name, _ in layers}
    skip = {name for name, o in overrides.items() if o is None}
    config = prune.defaults(
        score=score, structure=structure, distribution=distribution, sparsity=sparsity,
        layers={name: o for name, o in overrides.items() if o}, **settings,
    )  # fmt: skip
    return prune.prune_model(model, config, scale=scale, seed=seed, skip=skip)


def share_weights(
    model, bits: int = 4, method: str = "kmeans", rules=None, *, init: str = "linear", seed=0
) -> dict[str, int]:
    """Replaces each compressible layer's kernel by codes into a 2**bits-entry codebook.

    method: a one-table quantizer of `eie_jax.compression.quantizers` ("kmeans": Deep Compression's
    per-layer k-means, its codebook a trainable Param; "linear": a frozen per-layer int
    grid). Code 0 is the pruned weight. Rules' overrides: `bits`, `method`, `init`; `None`
    leaves a layer dense. The codebook is rounded to the kernel's dtype, so a bf16 layer
    computes with exactly its codebook's values. Build a new `eie_jax.Optimizer`
    afterwards (the kernel Param is gone; the codebook and bias train). Returns
    {layer: bits}.
    """
    layers = _layers(model, "share_weights")
    rules = check_rules(rules, {"bits", "method", "init"}, "share_weights")
    done = {}
    for i, (name, layer) in enumerate(layers):
        o = match_rule(rules, name)
        if o is None or layer.phase == "shared":
            continue
        if layer.phase == "scores":
            layer.freeze_scores()
        b, m, ini = o.get("bits", bits), o.get("method", method), o.get("init", init)
        if m not in quantizers.one_table():
            raise UserError(
                f"share_weights: method={m!r} for {name}; allowed: {quantizers.one_table()}"
            )
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 8:
            raise UserError(f"share_weights: bits={b!r} for {name}; allowed: an int in [1, 8]")
        if ini not in share.INITS:
            raise UserError(f"share_weights: init={ini!r} for {name}; allowed: {share.INITS}")
        kernel = np.asarray(layer.kernel[...], np.float32)
        q = quantizers.quantize(
            m, kernel, np.asarray(layer.mask[...]), b, init=ini, key=jax.random.key(seed + i)
        )
        codebook, codes, trainable = q.codebook, q.codes, q.trainable
        dtype = getattr(layer, "kernel_dtype", "float32")
        codebook = np.asarray(jnp.asarray(codebook).astype(dtype), np.float32)
        layer.share(codebook, codes, trainable=trainable)
        done[name] = b
    return done


def storage_report(
    model,
    *,
    index_bits: int = 5,
    huffman: bool = True,
    eie_num_pes: int = 64,
    eie_index_bits: int = 4,
) -> storage.CompressionReport:
    """Deep Compression's storage table (P+Q, P+Q+H) and EIE's format for the shared
    layers of a model; `.to_markdown()`, `.to_dict()`, `.compression_ratio_pqh`."""
    rows = []
    for name, layer in _layers(model, "storage_report"):
        if layer.phase != "shared":
            raise UserError(f"storage_report: layer {name!r} is not shared; call share_weights")
        bias = getattr(layer, "bias", None)
        rows.append(
            storage.layer_storage(
                name,
                np.asarray(layer.hardware_codes()),
                layer.weight_bits,
                index_bits,
                num_biases=0 if bias is None else int(np.size(bias[...])),
                huffman=huffman,
                eie_num_pes=eie_num_pes,
                eie_index_bits=eie_index_bits,
            )
        )
    return storage.CompressionReport(rows)


def iterative_targets(sparsity: float, rounds: int) -> list[float]:
    """Han et al. 2015's iterative pruning: round r of R prunes to r / R of the target."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise UserError(f"iterative_targets: rounds={rounds!r}; allowed: an int >= 1")
    return [sparsity * r / rounds for r in range(1, rounds + 1)]


__all__ = [
    "Optimizer", "Schedule", "apply_masks", "cubic_sparsity", "gradual", "iterative_targets",
    "prune_weights", "share_weights", "storage_report",
]  # fmt: skip
