"""Stage checkpoints of a compression run: every masked layer's arrays in one .npz file.

A layer is saved in its phase: kernel, mask and bias while dense or pruned; codebook,
codes and bias once shared. Files are written to a temporary name and renamed, so an
interrupted run never leaves a half-written checkpoint behind; a rerun resumes after the
last stage whose file exists.
"""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np

from eie_jax.layers import compressible_layers

_META = "__meta__"


def save(path: str, model, meta: dict | None = None) -> str:
    arrays = {}
    for name, layer in compressible_layers(model):
        arrays[f"{name}/bias"] = np.asarray(layer.bias[...])
        arrays[f"{name}/mask"] = np.asarray(layer.mask[...])
        if layer.phase == "shared":
            arrays[f"{name}/codebook"] = np.asarray(layer.codebook[...])
            arrays[f"{name}/codes"] = np.asarray(layer.codes[...])
        else:
            arrays[f"{name}/kernel"] = np.asarray(layer.kernel[...])
    arrays[_META] = np.array(json.dumps(meta or {}))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def restore(path: str, model) -> dict:
    """Loads a checkpoint written by `save` into a freshly built model; returns its meta."""
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    for name, layer in compressible_layers(model):
        if f"{name}/bias" not in arrays:
            raise ValueError(f"{path}: no arrays for layer {name!r}; was it saved from this model?")
        if f"{name}/codebook" in arrays:
            layer.share(arrays[f"{name}/codebook"], arrays[f"{name}/codes"])
        else:
            layer.kernel[...] = jnp.asarray(arrays[f"{name}/kernel"])
            layer.set_mask(arrays[f"{name}/mask"])
        layer.bias[...] = jnp.asarray(arrays[f"{name}/bias"])
    return json.loads(str(arrays[_META]))
