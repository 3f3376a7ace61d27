"""The config of a compression run: validation before any work, and the values derived from it.

Every check raises `errors.UserError` naming the field (`config.prune.layers.fc1.sparsity`)
and the value given, so that a mistake costs nothing: no stage has run yet.
"""

from __future__ import annotations

import functools
import re

import numpy as np
from flax import nnx

from eie_jax import data, eie, hw_loss, models, prune, share
from eie_jax.errors import UserError
from eie_jax.layers import compressible_layers

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
EIE_FIELDS = ("num_pes", "fifo_depth", "index_bits", "clock_mhz")

# ------------------------------------------------------------------ configuration


def integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def check_field(config, path: str, ok, allowed: str) -> None:
    """A UserError `config.PATH=VALUE: allowed: ALLOWED` unless ok(value) holds."""
    value = config
    for part in path.split("."):
        value = value[part]
    if not ok(value):
        raise UserError(f"config.{path}={value!r}: allowed: {allowed}")


def validate_config(config) -> None:
    """Rejects a bad config before any work: a UserError naming the field, its value and
    what is allowed, wherever the value sits (per-layer overrides included)."""

    need = functools.partial(check_field, config)
    need("model", lambda v: v in models.available(), models.available())
    need("dataset", lambda v: v in data.DATASETS, sorted(data.DATASETS))
    need("seed", lambda v: integer(v) and v >= 0, "an int >= 0")
    need("validation_size", lambda v: integer(v) and v >= 0, "an int >= 0")
    need("train.epochs", lambda v: integer(v) and v >= 0, "an int >= 0")
    need("train.batch_size", lambda v: integer(v) and v > 0, "an int > 0")
    need("train.learning_rate", lambda v: number(v) and v > 0, "a number > 0")
    need("train.weight_decay", lambda v: number(v) and v >= 0, "a number >= 0")
    need("train.optimizer", lambda v: v in OPTIMIZERS, OPTIMIZERS)
    need("train.lr_schedule", lambda v: v in LR_SCHEDULES, LR_SCHEDULES)
    need(
        "train.checkpoint_minutes", lambda v: number(v) and v >= 0, "minutes >= 0 (0: every epoch)"
    )
    need("distill.weight", lambda v: number(v) and 0 <= v <= 1, "in [0, 1] (0: no distillation)")
    need("distill.temperature", lambda v: number(v) and v > 0, "a number > 0")
    model_layers = [name for name, _ in compressible_layers(build_model(config.model, 0))]
    p = prune.validate(config.prune, model_layers)
    if p["schedule"] == "iterative" and p["epochs"] % p["rounds"]:
        raise UserError(
            f"config.prune.epochs={p['epochs']}: must be a multiple of prune.rounds={p['rounds']}"
        )
    need("share.method", lambda v: v in share.QUANTIZERS, sorted(share.QUANTIZERS))
    need("share.init", lambda v: v in share.INITS, share.INITS)
    need("share.bits", lambda v: integer(v) and 1 <= v <= 8, "an int in 1..8")
    need("share.finetune_epochs", lambda v: integer(v) and v >= 0, "an int >= 0")
    need("share.learning_rate", lambda v: number(v) and v > 0, "a number > 0")
    for name in config.share.layer_bits:
        if name not in model_layers:
            raise UserError(
                f"config.share.layer_bits.{name}: no such layer in {config.model}; "
                f"layers: {model_layers}"
            )
        need(f"share.layer_bits.{name}", lambda v: integer(v) and 1 <= v <= 8, "an int in 1..8")
    if config.share.method == "linear":
        for name in model_layers:
            if weight_bits(config, name) < 2:
                raise UserError(
                    f"config.share.bits={weight_bits(config, name)} (layer {name}): "
                    "share.method='linear' needs >= 2 bits (a sign and a magnitude)"
                )
    need("storage.index_bits", lambda v: integer(v) and 1 <= v <= 16, "an int in 1..16")
    hw_loss.HWLoss.from_config(config)
    eie_config(config)
    for key in ("batch_size", "calibration_size"):
        need(f"eie.{key}", lambda v: integer(v) and v > 0, "an int > 0")
    need("eie.headroom_bits", lambda v: integer(v) and v >= 0, "an int >= 0")
    need("eie.layers", lambda v: _regex(v) and any(re.fullmatch(v, n) for n in model_layers),
         f"a regex that fully matches some of the layers {model_layers}")  # fmt: skip


def _regex(value) -> bool:
    try:
        re.compile(value)
    except (re.error, TypeError):
        return False
    return isinstance(value, str)


def eie_config(config) -> eie.EIEConfig:
    """The EIEConfig of config.eie (a UserError naming the field if a value is out of range)."""
    try:
        return eie.EIEConfig.from_dict({k: config.eie[k] for k in EIE_FIELDS}, where="config.eie")
    except ValueError as e:
        raise UserError(str(e)) from None


def share_method(config) -> str:
    """config.share.method: a name in share.QUANTIZERS ('kmeans', Deep Compression's)."""
    return config.share.method


def weight_bits(config, name) -> int:
    """Codebook bits of one layer: share.layer_bits[name] if set, else share.bits."""
    return int(config.share.layer_bits.get(name, config.share.bits))


def build_model(name, seed):
    return models.get_model(name, rngs=nnx.Rngs(seed))
