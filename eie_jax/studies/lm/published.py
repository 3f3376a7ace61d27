"""Published dense models: the trained checkpoints the LM study starts from.

A published checkpoint is two files beside each other, named by config.train.checkpoint
(a path without extension, e.g. `checkpoints/char_transformer`):

  STEM.npz    the dense model's nnx.Param arrays only (`checkpoint.save_params`)
  STEM.json   what made it and what it reached: the sha256 of STEM.npz, the command, the
              config fields a dense model depends on (`DENSE_FIELDS`), the vocabulary and
              the split by work, validation and test nats/char (`evaluate` on
              config.data.eval_windows windows), the steps, seconds and machine of its
              training, and its learning curve.

`load` refuses (one line) a checkpoint whose recorded fields differ from the config's (a
changed model or schedule is another model: train it with --retrain or set
config.train.checkpoint=''), whose vocabulary is not the corpus', or whose file does not
hash to the recorded sha256. `publish` writes both files from a trained dense model.
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax

from eie_jax.training import checkpoint
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError

# The config fields a dense model depends on: a workdir holds one dense model, and a
# published one is used only by configs that agree on these.
DENSE_FIELDS = ("model", "model_kwargs", "data", "train", "seed")
# ... but not on these: where it is published, how often it checkpoints and evaluates.
NOT_DENSE = ("train.checkpoint", "train.checkpoint_minutes", "train.curve_every")
# A published model may be used with its text at another path (the vocabulary and the
# split by work are checked).
NOT_PUBLISHED = (*NOT_DENSE, "data.data_dir")


def dense_config(config) -> dict:
    """The config's DENSE_FIELDS as a JSON tree."""
    current = json.loads(config.to_json())
    return {k: current[k] for k in DENSE_FIELDS}


def paths(stem: str) -> tuple[str, str]:
    return stem + ".npz", stem + ".json"


def read(stem: str) -> dict:
    """STEM.json, or a UserError naming it."""
    _, info_path = paths(stem)
    where = f"config.train.checkpoint={stem!r}"
    if not os.path.isfile(info_path):
        raise UserError(
            f"{where}: no published checkpoint ({info_path} is missing); set "
            "config.train.checkpoint='' or pass --retrain to train the dense model"
        )
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        if not (
            isinstance(info["sha256"], str)
            and isinstance(info["dense_config"], dict)
            and isinstance(info["meta"], dict)
        ):
            raise TypeError("sha256, dense_config or meta of the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{info_path}: damaged ({type(e).__name__}: {e})") from None
    return info


def check(config, corpus) -> dict:
    """The JSON of the published checkpoint config.train.checkpoint, after checking that it
    was made with this config's dense fields and the corpus' vocabulary (a UserError
    naming what differs); a preflight: reads no parameters."""
    stem = config.train.checkpoint
    info = read(stem)
    changed = workdirs.config_differences(info["dense_config"], dense_config(config), NOT_PUBLISHED)
    if changed:
        raise UserError(
            f"config.train.checkpoint={stem!r} was trained with other fields "
            f"({'; '.join(changed[:3])}); pass --retrain to train this config's dense "
            "model, or set config.train.checkpoint=''"
        )
    if info["meta"].get("vocab") != corpus.vocab:
        raise UserError(
            f"config.train.checkpoint={stem!r}: trained on another vocabulary than the text "
            f"in {config.data.data_dir}"
        )
    return info


def load(config, corpus, build):
    """(model, meta) of the published checkpoint config.train.checkpoint (`check`ed): the
    model built by `build()` with its parameters; meta as the study's dense meta, with
    `checkpoint` (the stem) and `sha256`."""
    stem = config.train.checkpoint
    info = check(config, corpus)
    meta = dict(info["meta"])
    model = build()
    params_path, _ = paths(stem)
    sha = checkpoint.load_params(params_path, model, expected_sha256=info["sha256"])
    return model, dict(meta, checkpoint=stem, sha256=sha)


def publish(config, model, meta: dict, stem: str, command: str) -> dict:
    """Writes STEM.npz and STEM.json for the trained dense `model`, its study meta and the
    command that trains it; returns the JSON written. A model whose training a time cap
    stopped (`budget_stop`) is refused: --retrain could not repeat it."""
    if meta.get("budget_stop"):
        raise UserError(
            f"--publish: the dense model stopped on config.train.max_minutes after "
            f"{meta['steps']} of {config.train.steps} steps; a published model must be "
            "step-counted (set config.train.max_minutes=0 or more minutes)"
        )
    params_path, info_path = paths(stem)
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    sha = checkpoint.save_params(params_path, model)
    info = dict(
        sha256=sha,
        params=os.path.basename(params_path),
        command=command,
        dense_config=dense_config(config),
        meta={k: v for k, v in meta.items() if k not in ("checkpoint", "sha256")},
        machine=dict(
            platform=platform.platform(),
            cpus=os.cpu_count(),
            jax=jax.__version__,
            device=jax.devices()[0].device_kind,
        ),  # fmt: skip
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    workdirs.write_json_atomic(info_path, info)
    return info
