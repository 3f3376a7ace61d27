"""Stage checkpoints of a compression run, the Flax NNX way: `nnx.state` saved by orbax.

A checkpoint is a directory: `state/` (orbax's StandardCheckpointer over the model's
`nnx.state`: kernels, masks, biases, codebooks, codes) and `meta.json` (the stage's result
and each layer's phase, so that a fresh model can be brought to the same structure before
the state is restored into it). Everything is written under a temporary name and renamed,
so an interrupted run never leaves a half-written checkpoint behind; a rerun resumes after
the last stage whose directory exists. A damaged checkpoint is a UserError that names the
directory and says that deleting it recomputes that stage.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from eie_jax.errors import UserError
from eie_jax.layers import FrozenCodebook, compressible_layers


class _QuietOrbax(logging.Filter):
    """Drops orbax's INFO chatter from the run's log (warnings and errors still show)."""

    def filter(self, record):
        return record.levelno >= logging.WARNING or "orbax" not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbax())

_META = "meta.json"
_STATE = "state"
_OPTIMIZER = "optimizer"


def _layout(model) -> dict:
    """Each layer's phase and codebook (size, trainable), enough to rebuild its structure."""
    out = {}
    for name, layer in compressible_layers(model):
        entry = {"phase": layer.phase}
        if layer.phase == "shared":
            entry["codebook_size"] = int(layer.codebook.shape[0])
            entry["trainable"] = not isinstance(layer.codebook, FrozenCodebook)
        out[name] = entry
    return out


def save(path: str, model, meta: dict | None = None, *, optimizer=None) -> str:
    """Saves `nnx.state(model)` and `meta` (JSON) as the checkpoint directory `path`, and
    the optimizer's state (its step and moments) when given."""
    path = os.path.abspath(path)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(tmp, _STATE), nnx.state(model))
        if optimizer is not None:
            checkpointer.save(os.path.join(tmp, _OPTIMIZER), nnx.state(optimizer))
    with open(os.path.join(tmp, _META), "w") as f:
        json.dump({"layout": _layout(model), "meta": meta or {}}, f, indent=1)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def _damaged(path: str) -> str:
    return f"checkpoint {path} is damaged or from another model; delete it to recompute that stage"


def _read(path: str) -> dict:
    try:
        with open(os.path.join(path, _META)) as f:
            saved = json.load(f)
        if not isinstance(saved.get("layout"), dict) or "meta" not in saved:
            raise KeyError("layout or meta")
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"{_damaged(path)} ({type(e).__name__}: {e})") from None
    return saved


def read_meta(path: str) -> dict:
    """The meta a checkpoint was saved with, without restoring any model state."""
    return _read(os.path.abspath(path))["meta"]


def restore(path: str, model, *, optimizer=None) -> dict:
    """Restores a checkpoint written by `save` into a freshly built model (and the optimizer
    state into `optimizer`, one built alike); returns its meta."""
    path = os.path.abspath(path)
    damaged = _damaged(path)
    saved = _read(path)
    layout = saved["layout"]
    layers = dict(compressible_layers(model))
    if set(layout) != set(layers):
        raise UserError(f"{damaged} (layers {sorted(layout)}, model has {sorted(layers)})")
    for name, entry in layout.items():
        if entry["phase"] == "shared" and layers[name].phase != "shared":
            codebook = np.zeros(entry["codebook_size"], np.float32)
            codes = np.zeros(layers[name].kernel_shape, np.int32)
            layers[name].share(codebook, codes, trainable=entry["trainable"])
    targets = {_STATE: model} if optimizer is None else {_STATE: model, _OPTIMIZER: optimizer}
    states = {}
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            for name, target in targets.items():
                abstract = jax.eval_shape(lambda t=target: nnx.state(t))
                states[name] = checkpointer.restore(os.path.join(path, name), abstract)
    except Exception as e:  # orbax raises many types for a truncated or foreign checkpoint
        raise UserError(f"{damaged} ({type(e).__name__})") from None
    for name, target in targets.items():
        nnx.update(target, states[name])
    return saved["meta"]
