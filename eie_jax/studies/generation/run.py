"""experiments.generate's pipeline: a compressed char LM generating text on EIE, batch 1.

    dense model (WORKDIR/dense: the published checkpoint, or trained: lm.dense.dense_model)
    -> compress (config.generate's recipe: magnitude or calibrated pruning, per-layer
       plain or Fisher-weighted k-means, optionally fine-tuned centroids)
    -> decode.calibrate (per-layer fixed point) -> fidelity, teacher-forced on test text
       through the model's own forward: EIE against the float compressed model, and EIE
       against the dense fixed-point oracle (bit for bit) -> generation of num_chars
       characters (model.decode, batch 1) with per-layer hardware figures of every
       sampled token, and the compiles after the first token.
Writes WORKDIR/generate/{result.json, result.md, sample.txt}.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np

from eie_jax import eie
from eie_jax.api import on_eie
from eie_jax.studies.generation import decode
from eie_jax.studies.lm import dense as lm_dense
from eie_jax.studies.lm import report as lm_report
from eie_jax.studies.lm import study as lm_study
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import composed, kmeans
from eie_jax.utils import workdir
from eie_jax.utils.cli import UserError


class CompileCounter(logging.Handler):
    """Counts jax's "Compiling ..." log lines while jax_log_compiles is on."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += record.getMessage().startswith("Compiling")

    def __enter__(self):
        self._was = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", self._was)


def run(config, out_dir: str, log=logging.info) -> dict:
    """Preflight (the config, the corpus, the prompt's characters, a test text longer than
    the context) before any training, then the run under the workdir's lock."""
    lm_study.validate(config)
    corpus = lm_study.load_corpus(config)
    prompt = _encode(corpus, config.generate.prompt)
    lm_dense.check_source(config, corpus, out_dir)
    if len(corpus.test) < config.data.context + 1:
        raise UserError(
            f"config.data.test_works: {len(corpus.test)} characters of test text; "
            f"needs at least config.data.context + 1 = {config.data.context + 1}"
        )
    with lm_dense.session(config, out_dir):
        return _run(config, corpus, prompt, out_dir, log)


def compress(model, corpus, config) -> None:
    """The recipe of config.generate, in place: every FC layer pruned to `sparsity` (by
    magnitude, per layer, or by a calibrated rule: SparseGPT, Wanda, on the study's first
    draw of calibration windows), then one table of 2**bits entries per layer (plain or
    Fisher-weighted k-means, `composed.share`), its centroids fine-tuned for
    config.share.finetune_steps when `finetune`."""
    g = config.generate
    if g.rule == "magnitude":
        decode.prune_magnitude(model, g.sparsity)
    else:
        composed.prune_model(model, corpus, config, g.rule, str(g.sparsity))
    composed.share(model, corpus, config, g.quantizer, g.bits)
    if g.finetune:
        kmeans.finetune_centroids(model, corpus, config, "generate fine-tune")


def _run(config, corpus, prompt, out_dir, log) -> dict:
    g = config.generate
    dense, dense_meta = lm_dense.dense_model(config, corpus, out_dir)
    model = lm.copy(dense)
    compress(model, corpus, config)
    context = config.data.context
    rng = np.random.default_rng(config.seed)
    starts = rng.integers(0, len(corpus.train) - context, g.calibration_windows)
    calib = np.stack([corpus.train[s : s + context] for s in starts])
    base = eie.EIEConfig(num_pes=g.num_pes, fifo_depth=g.fifo_depth, weight_bits=g.bits)
    programs = decode.calibrate(model, calib, base, bias_correction=g.bias_correction)
    chip = on_eie.EIESession(model, programs=programs)  # batch 1, with figures
    batch_chip = on_eie.EIESession(model, programs=programs, rtl=False)
    batch_chip.recording = False
    oracle = on_eie.EIESession(model, programs=programs, backend="fixed_point")

    test = corpus.test[: g.fidelity_chars + 1]
    start = time.perf_counter()
    ours, theirs, targets = decode.teacher_forced(
        model, batch_chip, test, context, g.fidelity_batch
    )
    tf_seconds = time.perf_counter() - start
    fixed, _, _ = decode.teacher_forced(model, oracle, test, context, g.fidelity_batch)
    fidelity = {
        "chars": len(targets),
        "argmax_agreement": float(np.mean(ours.argmax(-1) == theirs.argmax(-1))),
        "eie_nats_per_char": decode.nats_per_char(ours, targets),
        "float_nats_per_char": decode.nats_per_char(theirs, targets),
        "eie_equals_fixed_point": bool(np.array_equal(ours, fixed)),
        "seconds": tf_seconds,
    }
    fidelity["nats_gap"] = fidelity["eie_nats_per_char"] - fidelity["float_nats_per_char"]
    log(f"fidelity: {fidelity}")

    counter = CompileCounter()
    times = []

    def on_step(step):
        times.append(time.perf_counter())
        if step == 1:
            counter.__enter__()

    try:
        ids, _ = decode.generate(
            model, chip, prompt, g.num_chars, temperature=g.temperature, seed=config.seed,
            on_step=on_step,
        )  # fmt: skip
        end = time.perf_counter()
    finally:
        if hasattr(counter, "_was"):
            counter.__exit__()
    steps = np.diff(np.array(times + [end]))
    generation = {
        "chars": g.num_chars,
        "seconds": float(end - times[0]),
        "median_step_s": float(np.median(steps)),
        "compiles_after_first_token": counter.count,
        "text": corpus.decode(ids),
    }
    log(f"generation: {g.num_chars} chars in {generation['seconds']:.1f} s")
    result = {
        "model": config.model,
        "dense": lm_report.dense_source(dense_meta),
        "sparsity": g.sparsity,
        "bits": g.bits,
        "recipe": dict(rule=g.rule, quantizer=g.quantizer, finetune=g.finetune),
        "bias_correction": g.bias_correction,
        "num_pes": g.num_pes,
        "formats": {n: [c.act_frac_bits, c.weight_frac_bits] for n, (_, c) in programs.items()},
        "fidelity": fidelity,
        "generation": generation,
        "per_layer": per_layer(chip.report(num_inputs=g.num_chars)),
        "host_ops_per_token": decode.host_ops_per_token(model, context // 2),
        "sram": decode.sram(chip),
    }
    result["per_token"] = per_token(result["per_layer"], base.clock_mhz)
    path = workdir.make(os.path.join(out_dir, "generate"))
    workdir.write_json_atomic(os.path.join(path, "result.json"), result)
    with open(os.path.join(path, "result.md"), "w") as f:
        f.write(to_markdown(result))
    return result


def _encode(corpus, s: str) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(corpus.vocab) if i}
    unknown = sorted({c for c in s if c not in lookup})
    if unknown:
        raise UserError(f"config.generate.prompt: characters {unknown} are not in the vocabulary")
    return np.array([lookup[c] for c in s])


def per_layer(report) -> dict:
    """Means over the sampled tokens of each FC layer's figures, in forward order."""
    return {
        f.name: {
            "paper_cycles": f.per_vector(f.cycles),
            "rtl_cycles": f.per_vector(f.rtl_cycles),
            "load_efficiency": f.load_efficiency,
            "density": f.input_density,
            "energy_uj": f.per_vector(f.total_energy_uj),
        }
        for f in report.layers
    }


def per_token(layers: dict, clock_mhz: float) -> dict:
    paper = sum(v["paper_cycles"] for v in layers.values())
    rtl = sum(v["rtl_cycles"] for v in layers.values())
    return {
        "paper_cycles": paper,
        "rtl_cycles": rtl,
        "paper_us": paper / clock_mhz,
        "rtl_us": rtl / clock_mhz,
        "paper_tokens_per_s": clock_mhz * 1e6 / paper,
        "rtl_tokens_per_s": clock_mhz * 1e6 / rtl,
        "energy_uj": sum(v["energy_uj"] for v in layers.values()),
    }


def _recipe_text(r) -> str:
    recipe = r.get("recipe", {})
    return "" if recipe.get("rule", "magnitude") == "magnitude" else f" by {recipe['rule']}"


def _quantizer_text(r) -> str:
    recipe = r.get("recipe", {})
    text = dict(kmeans_layer="k-means", squeezellm_layer="Fisher-weighted k-means")
    return text[recipe.get("quantizer", "kmeans_layer")] + (
        " (fine-tuned)" if recipe.get("finetune") else ""
    )


def to_markdown(r) -> str:
    t, f, s = r["per_token"], r["fidelity"], r["sram"]
    out = [
        f"{r['model']}: {r['sparsity']:.0%} pruned{_recipe_text(r)}, {r['bits']}-bit per-layer "
        f"{_quantizer_text(r)}, "
        f"{r['num_pes']} PEs at 800 MHz, bias correction {r['bias_correction']}; dense model: "
        f"{r.get('dense', 'trained in the workdir')}",
        "",
        "| FC layer | cycles (paper) | cycles (rtl) | load eff. | input density | energy nJ "
        "| fits SRAM alone |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["per_layer"].items():
        out.append(
            f"| {name} | {v['paper_cycles']:.0f} | {v['rtl_cycles']:.0f} "
            f"| {v['load_efficiency']:.2f} | {v['density']:.2f} | {1e3 * v['energy_uj']:.1f} "
            f"| {'yes' if s['layers_fit_alone'][name] else 'no'} |"
        )
    out += [
        f"| **per token** | {t['paper_cycles']:.0f} | {t['rtl_cycles']:.0f} | | "
        f"| {1e3 * t['energy_uj']:.1f} | all at once: {'yes' if s['all_fit'] else 'no'} |",
        "",
        f"µs/token: {t['paper_us']:.2f} (paper), {t['rtl_us']:.2f} (rtl); tokens/s: "
        f"{t['paper_tokens_per_s']:,.0f} (paper), {t['rtl_tokens_per_s']:,.0f} (rtl); "
        f"weights in EIE format {s['weight_bytes'] / 1024:.0f} KiB; largest per-PE need of "
        f"all layers at once {s['per_pe_need_all_layers']} bytes vs {s['capacity']}.",
        f"Host float ops per token (at position context/2): {r['host_ops_per_token']}.",
        "",
        f"Fidelity over {f['chars']} teacher-forced test characters: argmax agreement "
        f"{f['argmax_agreement']:.2%}; {f['eie_nats_per_char']:.4f} (EIE) vs "
        f"{f['float_nats_per_char']:.4f} (float) nats/char, gap {f['nats_gap']:+.4f}; EIE "
        f"equals the dense fixed point bit for bit: {f['eie_equals_fixed_point']}.",
        f"Generation: {r['generation']['chars']} characters in "
        f"{r['generation']['seconds']:.1f} s (median step {r['generation']['median_step_s']:.3f}"
        f" s); compiles after the first token: {r['generation']['compiles_after_first_token']}.",
    ]
    return "\n".join(out) + "\n"
