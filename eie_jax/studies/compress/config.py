"""The config of a compression run: validation before any work, and the values derived from it.

Every check raises `errors.UserError` naming the field (`config.prune.layers.fc1.sparsity`)
and the value given, so that a mistake costs nothing: no stage has run yet.
"""

from __future__ import annotations

import os
import re

from flax import nnx

from eie_jax import eie, models
from eie_jax.compression import prune, quantizers, share
from eie_jax.compression.layers import compressible_layers
from eie_jax.data import idx as data
from eie_jax.training import hw_loss
from eie_jax.utils import schema
from eie_jax.utils.cli import UserError

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
EIE_FIELDS = ("num_pes", "fifo_depth", "index_bits", "clock_mhz")
BITS = schema.integer(4, 1, 8)

# ------------------------------------------------------------------ configuration


def section() -> schema.Section:
    """The schema of a compression run: every field, its default and what it allows.

    Config files (configs/lenet_300_100.py) start from `section().defaults()` and override;
    the prune section holds every setting of every registered pruning rule.
    """
    S, integer, number = schema.Section, schema.integer, schema.number
    return S(
        dict(
            model=schema.choice("lenet_300_100", models.available),
            dataset=schema.choice("fashion_mnist", lambda: sorted(data.DATASETS)),
            data_dir=schema.string("", doc="empty: the dataset's default place"),
            validation_size=integer(5000, lo=0),
            seed=integer(0, lo=0),
            train=S(
                dict(
                    epochs=integer(20, lo=0),
                    batch_size=integer(128, lo=1),
                    learning_rate=number(1e-3, 0, above=True),
                    weight_decay=number(1e-5, 0),
                    # 'adam' (decoupled weight decay) | 'sgd' (momentum 0.9)
                    optimizer=schema.choice("adam", OPTIMIZERS),
                    # every stage decays its rate to 0 ('cosine') or keeps it ('constant')
                    lr_schedule=schema.choice("cosine", LR_SCHEDULES),
                    # A stage checkpoints inside after an epoch when this many minutes have
                    # passed since its last one; an interrupted run resumes there.
                    checkpoint_minutes=number(5.0, 0, note="0: every epoch"),
                )
            ),
            prune=prune.section(),
            share=S(
                dict(
                    method=schema.choice("kmeans", quantizers.one_table),
                    bits=BITS,  # every layer's codebook: 2**bits entries, entry 0 = zero
                    layer_bits=schema.Table(BITS),  # per-layer overrides, e.g. dict(fc3=5)
                    init=schema.choice("linear", share.INITS),
                    finetune_epochs=integer(8, lo=0),
                    learning_rate=number(1e-4, 0, above=True),
                )
            ),
            # Knowledge distillation from the dense network while pruning and fine-tuning
            # (Hinton et al. 2015): loss = (1 - weight) * CE + weight * T^2 * KL.
            distill=S(
                dict(
                    weight=number(0.0, 0, 1, note="0: no distillation"),
                    temperature=number(4.0, 0, above=True),
                )
            ),
            hw_loss=hw_loss.SECTION,
            # Deep Compression's bit accounting: relative indices with filler zeros.
            storage=S(dict(index_bits=integer(5, 1, 16), huffman=schema.boolean(True))),
            eie=eie.config.section(*EIE_FIELDS)
            | S(
                dict(
                    # regex (re.fullmatch) of the layers EIE runs; the rest: host float
                    layers=schema.regex(r"fc\d+"),
                    batch_size=integer(2000, lo=1),  # test inputs per simulate_batch call
                    calibration_size=integer(5000, lo=1),  # sets the fixed-point ranges
                    headroom_bits=integer(1, lo=0),
                )
            ),
        )
    )


def validate_config(config) -> None:
    """Rejects a bad config before any work: a UserError naming the field, its value and
    what is allowed, wherever the value sits (per-layer overrides included): the schema's
    checks, then those that need the model's layers."""
    schema.check(config, section())
    model = build_model(config.model, 0)
    model_layers = [name for name, _ in compressible_layers(model)]
    p = prune.validate(config.prune, model_layers)
    if p["schedule"] == "iterative" and p["epochs"] % p["rounds"]:
        raise UserError(
            f"config.prune.epochs={p['epochs']}: must be a multiple of prune.rounds={p['rounds']}"
        )
    for name in config.share.layer_bits:
        if name not in model_layers:
            raise UserError(
                f"config.share.layer_bits.{name}: no such layer in {config.model}; "
                f"layers: {model_layers}"
            )
    if config.share.method == "linear":
        for name in model_layers:
            if weight_bits(config, name) < 2:
                raise UserError(
                    f"config.share.bits={weight_bits(config, name)} (layer {name}): "
                    "share.method='linear' needs >= 2 bits (a sign and a magnitude)"
                )
    hw_loss.HWLoss.from_config(config)
    if not any(re.fullmatch(config.eie.layers, n) for n in model_layers):
        raise UserError(
            f"config.eie.layers={config.eie.layers!r}: matches none of the layers {model_layers}"
        )
    check_simulation_memory(config, model)


def check_simulation_memory(config, model) -> None:
    """Refuses an EIE stage that would not fit this machine's memory (a PE count far past
    the design's, say), before any training: a UserError naming eie.num_pes and the need."""
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for name, layer in compressible_layers(model):
        inputs = getattr(layer, "in_features", None)
        if inputs is None or not re.fullmatch(config.eie.layers, name):
            continue
        need = eie.datapath.batch_bytes(config.eie.batch_size, config.eie.num_pes, inputs)
        if need > have:
            raise UserError(
                f"config.eie.num_pes={config.eie.num_pes}: simulating {name} ({inputs} inputs) "
                f"in batches of eie.batch_size={config.eie.batch_size} needs about "
                f"{need / 2**30:.0f} GiB of memory, this machine has {have / 2**30:.0f} GiB; "
                "lower eie.batch_size or eie.num_pes"
            )


def eie_config(config) -> eie.EIEConfig:
    """The EIEConfig of config.eie (a UserError naming the field if a value is out of range)."""
    return eie.EIEConfig(**{k: config.eie[k] for k in EIE_FIELDS})


def share_method(config) -> str:
    """config.share.method: a one-table quantizer ('kmeans', Deep Compression's)."""
    return config.share.method


def weight_bits(config, name) -> int:
    """Codebook bits of one layer: share.layer_bits[name] if set, else share.bits."""
    return int(config.share.layer_bits.get(name, config.share.bits))


def build_model(name, seed):
    return models.get_model(name, rngs=nnx.Rngs(seed))
