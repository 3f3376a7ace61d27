"""How fast do the language models train? Characters/s and achieved GFLOP/s of the train step.

    python -m experiments.bench_train --config=configs/bench_train.py --workdir=runs/bench_train

For each model of config.models (the LM study's two, at its sizes and training batches), the
model and its optimizer are built as the study trains them (`lm.build_model`,
`trainer.make_optimizer` with the study's warm-up cosine rate), and timed (medians of
config.repeats after compiling, every program once per round in turn, `interleaved_medians`):

- forward: the loss alone; forward + backward: `nnx.value_and_grad` of it; XLA step: the
  whole step with the optimizer update (each a jitted pure function of the split state);
- step: `trainer._step` as `fit` calls it (the same program behind nnx's jit, whose Python
  walk over the model and optimizer each call is the difference), on a batch at hand;
- host batch: one `text.train_batch` (contiguous windows at random offsets of a random text
  of config.text_chars ids), which `fit` draws every step;
- loop: 4 steps as `fit` runs them (rate set, a batch drawn, the step dispatched, no wait
  between), per step;
- matmul: a float32 config.matmul_size square matmul, the machine's reference rate,
  interleaved with the model's programs so that a load spike hits both alike.

FLOPs are XLA's cost analysis (`compiled.cost_analysis()`) of each compiled program. XLA
counts a loop's body once, not once per trip, so for a program with a loop (the LSTM's
`lax.scan` over time) the count is that of the same function lowered with its scans
unrolled (`Lowered.cost_analysis()`, before optimization; compiling it would take minutes).
Characters/s = batch * context / step time; GFLOP/s = step FLOPs / step time, and its
fraction of the matmul's; the phases (forward, backward, optimizer update, nnx dispatch) are
differences of the medians, with their FLOPs and rates. Prints the tables and writes
WORKDIR/bench_train.{json,md} with the machine.
"""

import contextlib
import functools
import json
import os
import re
from unittest import mock

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from flax import nnx
from ml_collections import config_flags

from configs import bench_train as bench_config
from eie_jax.data import text
from eie_jax.studies.lm import training as lm
from eie_jax.training import trainer
from eie_jax.utils import cli as errors
from eie_jax.utils import schema
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.cli import UserError
from eie_jax.utils.timer import interleaved_medians
from eie_jax.utils.timer import machine as ran_on

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the tables and the JSON go.")
flags.mark_flags_as_required(["config", "workdir"])

LOOP_STEPS = 4  # steps per timing of the training loop, dispatched without waiting
TARGET = 0.4  # the transformer's step should reach this fraction of the matmul's rate
PHASES = ("forward", "backward", "optimizer update", "nnx dispatch")


def study_config(entry, seed: int) -> ml_collections.ConfigDict:
    """What `lm.build_model` reads of a study config, from a config.models entry."""
    return ml_collections.ConfigDict(
        dict(model=entry.model, model_kwargs=dict(entry.model_kwargs), seed=seed)
    )


def validate(config) -> None:
    """The schema, then each model built and run on its batch, shapes only (no work)."""
    schema.check(config, bench_config.SECTION)
    if not config.models:
        raise UserError("config.models: no models; name at least one (configs/bench_train.py)")
    for name, entry in config.models.items():
        where = f"config.models.{name}"
        if config.text_chars < entry.context + 1:
            raise UserError(
                f"config.text_chars={config.text_chars}: shorter than {where}.context + 1 = "
                f"{entry.context + 1}"
            )
        build = lambda entry=entry: lm.build_model(study_config(entry, 0), config.vocab_size)
        try:
            nnx.eval_shape(build)
        except TypeError as e:
            raise UserError(f"{where}.model_kwargs: {e}") from None
        ids = jax.ShapeDtypeStruct((entry.batch_size, entry.context), jnp.int32)
        try:
            jax.eval_shape(lambda ids, build=build: build()(ids), ids)
        except (TypeError, ValueError) as e:
            raise UserError(
                f"{where}: the model does not take batches of {entry.batch_size} x "
                f"{entry.context} (context vs model_kwargs?): {' '.join(str(e).split())}"
            ) from None


# ------------------------------------------------------------------ FLOPs


def costs(analysed) -> dict:
    """flops and bytes accessed from a cost analysis: a dict (jax >= 0.4.3x) or a list of
    one dict per program (older jax)."""
    analysis = analysed.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        raise RuntimeError(f"XLA's cost analysis has no flops on this backend: {analysis!r}")
    return dict(flops=float(analysis["flops"]), bytes=float(analysis.get("bytes accessed", -1)))


@contextlib.contextmanager
def scans_unrolled():
    """jax.lax.scan with unroll=True while tracing: one copy of the body per trip."""
    scan = jax.lax.scan
    with mock.patch.object(jax.lax, "scan", functools.partial(scan, unroll=True)):
        yield


def compiled_program(fn, *args) -> tuple:
    """(compiled fn, its XLA costs, how its flops were counted)."""
    compiled = jax.jit(fn).lower(*args).compile()
    counted = costs(compiled)
    if not re.search(r"\bwhile\(", compiled.as_text()):
        return compiled, counted, "compiled"
    with scans_unrolled():  # a new function: a fresh trace, not jit's cached one
        lowered = jax.jit(lambda *a: fn(*a)).lower(*args)
    counted["flops"] = costs(lowered)["flops"]
    return compiled, counted, "lowered with scans unrolled"


# ------------------------------------------------------------------ programs


def pure_programs(model, optimizer, loss) -> tuple:
    """(state, {name: fn(state, inputs, targets)}): forward, forward + backward, and the
    whole step (trainer's own, with the optimizer update) as pure functions of the split
    (model, optimizer)."""
    graphdef, state = nnx.split((model, optimizer))

    def forward(state, inputs, targets):
        model, _ = nnx.merge(graphdef, state)
        return loss(model, inputs, targets)

    def backward(state, inputs, targets):
        model, _ = nnx.merge(graphdef, state)
        return nnx.value_and_grad(loss)(model, inputs, targets)

    def step(state, inputs, targets):
        model, optimizer = nnx.merge(graphdef, state)
        value = trainer._step.fun(model, optimizer, loss, inputs, targets)
        return value, nnx.state((model, optimizer))

    return state, dict(forward=forward, backward=backward, step=step)


def matmul_program(n: int, seed: int) -> tuple:
    """(fn running the compiled float32 n x n @ n x n matmul, its FLOPs)."""
    rng = np.random.default_rng(seed)
    a, b = (jnp.asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    try:
        flops = costs(compiled)["flops"]
    except RuntimeError:
        flops = 2.0 * n**3
    return (lambda: compiled(a, b)), flops


def bench_model(name, entry, config, ids, matmul, matmul_flops) -> dict:
    model = lm.build_model(study_config(entry, config.seed), config.vocab_size)
    rate = trainer.warmup_cosine(entry.learning_rate)
    optimizer = trainer.make_optimizer(model, rate, weight_decay=entry.weight_decay)
    lr = optimizer.opt_state.hyperparams["learning_rate"]
    lr[...] = jnp.float32(entry.learning_rate)
    batch, context = entry.batch_size, entry.context
    rng = np.random.default_rng(config.seed + 1)
    inputs, targets = map(jnp.asarray, text.train_batch(ids, batch, context, rng))

    state, pure = pure_programs(model, optimizer, lm._loss)
    fns, counted, how = {}, {}, {}
    for phase, fn in pure.items():
        compiled, counted[phase], how[phase] = compiled_program(fn, state, inputs, targets)
        fns[phase] = functools.partial(compiled, state, inputs, targets)
    fns["trainer step"] = lambda: trainer._step(model, optimizer, lm._loss, inputs, targets)

    def loop():
        for _ in range(LOOP_STEPS):
            lr[...] = jnp.float32(entry.learning_rate)
            drawn = text.train_batch(ids, batch, context, rng)
            value = trainer._step(model, optimizer, lm._loss, *drawn)
        return value

    fns["loop"] = loop
    fns["host batch"] = lambda: text.train_batch(ids, batch, context, rng)
    fns["matmul"] = matmul
    seconds = interleaved_medians(fns, config.repeats)
    seconds["loop"] /= LOOP_STEPS

    flops = {phase: counted[phase]["flops"] for phase in pure}
    step_s, chars = seconds["trainer step"], batch * context
    matmul_rate = matmul_flops / seconds["matmul"]
    rate = flops["step"] / step_s
    phase_s = dict(
        zip(
            PHASES,
            (
                seconds["forward"],
                seconds["backward"] - seconds["forward"],
                seconds["step"] - seconds["backward"],
                step_s - seconds["step"],
            ),
            strict=True,
        )
    )
    phase_flops = dict(
        zip(
            PHASES,
            (flops["forward"], flops["backward"] - flops["forward"],
             flops["step"] - flops["backward"], 0.0),
            strict=True,
        )
    )  # fmt: skip
    params = sum(int(np.size(x)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    return dict(
        name=name,
        model=entry.model,
        batch_size=batch,
        context=context,
        params=params,
        flops=flops,
        flops_counted=how,
        bytes_accessed={phase: counted[phase]["bytes"] for phase in pure},
        seconds=seconds,
        chars_per_s=chars / step_s,
        loop_chars_per_s=chars / seconds["loop"],
        gflops_per_s=rate / 1e9,
        matmul_gflops_per_s=matmul_rate / 1e9,
        fraction_of_matmul=rate / matmul_rate,
        phases=[
            dict(
                phase=p,
                seconds=phase_s[p],
                share=phase_s[p] / step_s,
                flops=phase_flops[p],
                gflops_per_s=(
                    phase_flops[p] / phase_s[p] / 1e9 if phase_s[p] > 0 < phase_flops[p] else None
                ),
            )
            for p in PHASES
        ],
    )


# ------------------------------------------------------------------ the run


def run(config, workdir):
    validate(config)
    with workdirs.session(workdir, "bench_train", config):
        return _run(config, workdir)


def _run(config, workdir):
    rng = np.random.default_rng(config.seed)
    ids = rng.integers(0, config.vocab_size, config.text_chars).astype(np.int32)
    matmul, matmul_flops = matmul_program(config.matmul_size, config.seed)
    rows = []
    for name, entry in config.models.items():
        rows.append(bench_model(name, entry, config, ids, matmul, matmul_flops))
        print(f"{name}: {rows[-1]['chars_per_s']:.0f} chars/s", flush=True)
    reference = dict(
        size=config.matmul_size,
        flops=matmul_flops,
        gflops_per_s=float(np.median([r["matmul_gflops_per_s"] for r in rows])),
    )
    machine = ran_on()
    md = to_markdown(rows, reference, machine)
    with open(os.path.join(workdir, "bench_train.md"), "w") as f:
        f.write(md)
    with open(os.path.join(workdir, "bench_train.json"), "w") as f:
        json.dump(
            dict(config=config.to_dict(), machine=machine, matmul=reference, models=rows),
            f,
            indent=2,
        )
    print(md)
    return rows


def verdict(row) -> str:
    """One line: the step's fraction of the matmul rate, and where its time goes."""
    phases = sorted(row["phases"], key=lambda p: -p["seconds"])
    parts = ", ".join(
        f"{p['phase']} {100 * p['share']:.0f} %"
        + (f" at {p['gflops_per_s']:.1f} GFLOP/s" if p["gflops_per_s"] else "")
        for p in phases
    )
    ok = "at or above" if row["fraction_of_matmul"] >= TARGET else "below"
    host = row["seconds"]["host batch"] / row["seconds"]["trainer step"]
    return (
        f"- {row['name']}: {100 * row['fraction_of_matmul']:.1f} % of the matmul's rate "
        f"({ok} {100 * TARGET:.0f} %); the step's time: {parts}; a host batch adds "
        f"{100 * host:.0f} % of a step\n"
    )


def to_markdown(rows, reference, machine) -> str:
    head = (
        "| model | batch x context | params | GFLOP / step | step ms | chars/s | GFLOP/s "
        "| of matmul | host batch ms | loop ms | loop chars/s |\n" + "|---" * 11 + "|\n"
    )
    body = "".join(
        f"| {r['name']} | {r['batch_size']} x {r['context']} | {r['params'] / 1e6:.2f} M "
        f"| {r['flops']['step'] / 1e9:.2f} | {1e3 * r['seconds']['trainer step']:.1f} "
        f"| {r['chars_per_s']:.0f} | {r['gflops_per_s']:.1f} "
        f"| {100 * r['fraction_of_matmul']:.0f} % | {1e3 * r['seconds']['host batch']:.2f} "
        f"| {1e3 * r['seconds']['loop']:.1f} | {r['loop_chars_per_s']:.0f} |\n"
        for r in rows
    )
    n = reference["size"]
    matmul = (
        f"\nfloat32 matmul {n} x {n} @ {n} x {n}: {reference['flops'] / 1e9:.2f} GFLOP, "
        f"{reference['gflops_per_s']:.1f} GFLOP/s (median over the models' runs)\n\n"
    )
    phase_head = (
        "Phases: differences of the medians (noise can make a small one negative).\n\n"
        "| model | phase | ms | share of step | GFLOP | GFLOP/s |\n" + "|---" * 6 + "|\n"
    )
    phases = "".join(
        f"| {r['name']} | {p['phase']} | {1e3 * p['seconds']:.2f} | {100 * p['share']:.0f} % "
        f"| {p['flops'] / 1e9:.3f} | "
        + ("-" if p["gflops_per_s"] is None else f"{p['gflops_per_s']:.1f}")
        + " |\n"
        for r in rows
        for p in r["phases"]
    )
    counted = "".join(
        f"- {r['name']} FLOPs: XLA's cost analysis, {r['flops_counted']['step']}\n" for r in rows
    )
    verdicts = "".join(verdict(r) for r in rows)
    return (
        head + body + matmul + phase_head + phases + "\n" + counted + verdicts
        + f"\nmachine: {machine}\n"
    )  # fmt: skip


def main(argv):
    del argv
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: validate(_CONFIG.value))
