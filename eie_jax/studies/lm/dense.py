"""The dense model every method of the LM study starts from, and its workdir.

`dense_model` restores it from WORKDIR/dense, else loads the published checkpoint the
config names, else trains it (checkpointed inside, resumable); `check_source` is its
preflight and `session` the workdir's lock and dense-config check.

Published dense models, the trained checkpoints the study starts from:

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
import time

from absl import logging

from eie_jax.studies.lm import training as lm
from eie_jax.training import checkpoint, trainer
from eie_jax.utils import timer
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
        machine=timer.machine(),
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    workdirs.write_json_atomic(info_path, info)
    return info


def check_source(config, corpus, workdir: str, retrain: bool = False) -> None:
    """Preflight of where `dense_model` takes the model from: unless WORKDIR/dense holds it
    already or it is retrained, the published checkpoint must fit this config and corpus
    (`check`)."""
    if lm.has_checkpoint(os.path.join(workdir, "dense")):
        return
    if config.train.checkpoint and not retrain:
        check(config, corpus)


def dense_model(config, corpus, workdir, *, retrain: bool = False):
    """The dense model: restored from WORKDIR/dense; else the published checkpoint
    config.train.checkpoint (`load`) unless `retrain` or it is ''; else trained
    (checkpointed inside, resumable) and saved there. Its meta names where it came from:
    `checkpoint` and `sha256` for a published one."""
    path = os.path.join(workdir, "dense")
    build = lambda: lm.build_model(config, corpus.vocab_size)
    if lm.has_checkpoint(path):
        model, meta = lm.restore_dense(path, build)
        if meta.get("vocab") != corpus.vocab:
            raise UserError(f"{path}: trained on another vocabulary; use a new --workdir")
        if retrain and "sha256" in meta:
            raise UserError(
                f"--retrain: {path} holds the published checkpoint {meta['checkpoint']}; "
                "use a new --workdir"
            )
        logging.info("[dense] restored from %s", path)
        return model, meta
    if config.train.checkpoint and not retrain:
        model, meta = load(config, corpus, build)
        lm.save_dense(path, model, meta)
        logging.info(
            "[dense] published checkpoint %s (sha256 %s): validation %.4f, test %.4f nats/char",
            meta["checkpoint"], meta["sha256"][:12], meta["validation_nats"], meta["test_nats"],
        )  # fmt: skip
        return model, meta
    model = build()
    # Checkpoints inside the training (WORKDIR/dense.partial): an interrupted run resumes.
    progress = trainer.InStage(path + ".partial", config.train.checkpoint_minutes)
    record = lm.train(
        model, corpus, config, steps=config.train.steps,
        learning_rate=config.train.learning_rate, minutes=config.train.max_minutes,
        stage="dense", seed=config.seed, progress=progress,
        curve_every=config.train.curve_every,
    )  # fmt: skip
    meta = dict(
        vocab=corpus.vocab,
        works={k: list(v) for k, v in corpus.works.items()},
        validation_nats=score(model, corpus.validation, config),
        test_nats=score(model, corpus.test, config),
        **record,
    )
    lm.save_dense(path, model, meta)
    progress.done()
    logging.info(
        "[dense] %d steps in %.0f s: validation %.4f, test %.4f nats/char",
        record["steps"], record["seconds"], meta["validation_nats"], meta["test_nats"],
    )  # fmt: skip
    return model, meta


def score(model, ids, config) -> float:
    return lm.evaluate(model, ids, config.data.context, config.data.eval_windows)


def session(config, workdir: str):
    """The workdir of a language-model run (the study and generation share it): its lock,
    and a refusal of one whose dense model was made with other `DENSE_FIELDS`
    (one line naming them; recorded in WORKDIR/dense_config.json)."""
    return workdirs.session(
        workdir, "language-model", dense_config(config), "dense_config.json",
        ignore=NOT_DENSE,
    )  # fmt: skip
