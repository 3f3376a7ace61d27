"""Stage checkpoints of a compression run, the Flax NNX way: `nnx.state` saved by orbax.

A checkpoint is a directory: `state/` (orbax's StandardCheckpointer over the model's
`nnx.state`: kernels, masks, biases, codebooks, codes) and `meta.json` (the stage's result
and each layer's phase, so that a fresh model can be brought to the same structure before
the state is restored into it). Everything is written under a temporary name and renamed,
so an interrupted run never leaves a half-written checkpoint behind, and a failed save (a
full disk) removes what it wrote and keeps the checkpoint that was there; a rerun resumes
after the last stage whose directory exists. A damaged checkpoint is a UserError that names
the directory and says that deleting it recomputes that stage; a full or read-only disk is
the OSError that says so, naming the checkpoint (`errors.run_main` makes it one line).

Orbax's own account of a failure is pages of tracebacks from its threads, on top of the one
error raised here: its log records are dropped, and so is what a failed save or restore
leaves running (see `_orbax_leftover`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from eie_jax.compression.layers import FrozenCodebook, compressible_layers
from eie_jax.utils.cli import UserError

_ORBAX = f"{os.sep}orbax{os.sep}"


class _QuietOrbax(logging.Filter):
    """Drops orbax's records from the run's log: its INFO chatter, and its errors, which
    repeat (with the tracebacks of its threads) the one exception `save` or `restore`
    raises; asyncio's "Task exception was never retrieved" for orbax's abandoned tasks too."""

    def filter(self, record):
        if record.name == "asyncio":
            return _ORBAX not in record.getMessage()
        return _ORBAX not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbax())
logging.getLogger("asyncio").addFilter(_QuietOrbax())


def _orbax_leftover(unraisable) -> bool:
    """What orbax leaves behind when a save or restore fails: it closes its event loop with
    reads or writes still in flight, which complete onto the closed loop from tensorstore's
    threads (RuntimeError: Event loop is closed), and their coroutines, collected later,
    raise as they are closed (orbax turns even GeneratorExit into its own Exception). Python
    prints each as an "Exception ignored" traceback, hundreds of lines after the error."""
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and _ORBAX in code.co_filename:
        return True
    exc = unraisable.exc_value
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _drop_orbax_leftovers() -> None:
    """Installs a sys.unraisablehook that drops `_orbax_leftover`s and passes on the rest
    (once: a hook already installed, even under another one's, is not wrapped again)."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_orbax_leftovers", False):
        return

    def hook(unraisable):
        if not _orbax_leftover(unraisable):
            previous(unraisable)

    hook.drops_orbax_leftovers = True
    sys.unraisablehook = hook


# A full or read-only disk, and no permission to write: what a failed save says it was.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def _write_error(e: BaseException, path: str) -> OSError | None:
    """A failed save as an OSError naming the checkpoint when the disk refused the write
    (orbax reports that as tensorstore's ValueError with the system's words in it); None
    for any other failure, which keeps its own exception."""
    if isinstance(e, OSError):
        code = e.errno
    elif isinstance(e, ValueError):
        code = next((c for c in _WRITE_ERRNOS if os.strerror(c) in str(e)), None)
    else:
        code = None
    return OSError(code, os.strerror(code), path) if code in _WRITE_ERRNOS else None


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
    _drop_orbax_leftovers()
    try:
        os.makedirs(tmp)
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(os.path.join(tmp, _STATE), nnx.state(model))
            if optimizer is not None:
                checkpointer.save(os.path.join(tmp, _OPTIMIZER), nnx.state(optimizer))
        with open(os.path.join(tmp, _META), "w") as f:
            json.dump({"layout": _layout(model), "meta": meta or {}}, f, indent=1)
        _replace_dir(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its space back
        error = _write_error(e, path)
        if error is None:
            raise
        raise error from e
    return path


def _replace_dir(tmp: str, path: str) -> None:
    """Renames the directory TMP to PATH. One already at PATH is set aside first and put
    back when the rename fails, so that a failed save keeps the checkpoint it replaces."""
    old = path + ".old"
    shutil.rmtree(old, ignore_errors=True)
    replacing = os.path.isdir(path)
    if replacing:
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if replacing:
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
    _drop_orbax_leftovers()
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


# ------------------------------------------------------------------ parameters only


def sha256(path: str) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _params(model) -> dict:
    """{dotted path: nnx.Param} of the model, in nnx's order."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(map(str, key)): var for key, var in flat}


def save_params(path: str, model) -> str:
    """The model's nnx.Param arrays (nothing else: no masks, codes or optimizer) as one
    .npz keyed by dotted path, written atomically; returns the file's sha256. A dense
    model to ship or share: `load_params` puts it into a model built alike."""
    arrays = {name: np.asarray(var[...]) for name, var in _params(model).items()}
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        error = _write_error(e, path)
        if error is None:
            raise
        raise error from e
    return sha256(path)


def load_params(path: str, model, *, expected_sha256: str | None = None) -> str:
    """Loads `save_params`' file into `model` (built with the same structure); returns the
    file's sha256. A missing file, one whose hash is not `expected_sha256`, or one whose
    arrays do not match the model's parameters (names, shapes) is a UserError naming it."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such parameter file")
    digest = sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise UserError(
            f"{path}: sha256 {digest[:12]}... is not the recorded {expected_sha256[:12]}..."
        )
    params = _params(model)
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UserError(f"{path}: damaged ({type(e).__name__}: {e})") from None
    if set(arrays) != set(params):
        missing, extra = sorted(set(params) - set(arrays)), sorted(set(arrays) - set(params))
        raise UserError(
            f"{path}: parameters of another model (missing {missing[:3]}, extra {extra[:3]})"
        )
    for name, var in params.items():
        if arrays[name].shape != var[...].shape:
            raise UserError(
                f"{path}: {name} has shape {arrays[name].shape}, the model's is {var[...].shape}"
            )
        var[...] = jnp.asarray(arrays[name], var[...].dtype)
    return digest
