"""Batch-1 generation on EIE (studies/generation/decode.py, run.py): the host float ops against
the float model, EIE against the dense fixed-point oracle bit for bit, no recompiles, and
a `:smoke` run of the pipeline on a tiny synthetic text."""

import jax
import numpy as np
import pytest
from flax import nnx

from configs import char_transformer
from eie_jax import eie
from eie_jax.api import on_eie
from eie_jax.compression.layers import compressible_layers
from eie_jax.eie import fc_layer as hardware
from eie_jax.models import char_lstm
from eie_jax.models import char_transformer as tf_model
from eie_jax.studies.generation import decode
from eie_jax.studies.generation import run as decode_run
from eie_jax.studies.lm import study as lm_study
from eie_jax.studies.lm.methods import kmeans
from eie_jax.utils.cli import UserError
from tests import synthetic_text

VOCAB = 11


def small(kind, num_layers=2):
    if kind == "char_transformer":
        return tf_model.CharTransformer(
            rngs=nnx.Rngs(0), vocab_size=VOCAB, context=16, d_model=32, num_layers=num_layers,
            num_heads=4, d_mlp=64,
        )  # fmt: skip
    return char_lstm.CharLSTM(rngs=nnx.Rngs(0), vocab_size=VOCAB, embed_dim=8, hidden=16)


@pytest.mark.parametrize("kind", ["char_transformer", "char_lstm"])
def test_decode_one_character_at_a_time_equals_the_forward(kind):
    model = small(kind)
    ids = np.random.default_rng(0).integers(1, VOCAB, (2, 12))
    logits = np.asarray(model(jax.numpy.asarray(ids)))
    state = model.init_cache(2) if kind == "char_transformer" else None
    steps = []
    for t in range(ids.shape[1]):  # one token at a time: KV cache / (h, c)
        out, state = model.decode(jax.numpy.asarray(ids[:, t : t + 1]), state)
        steps.append(np.asarray(out)[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), logits, atol=2e-5)
    if kind == "char_transformer":
        assert int(state.index) == 12


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["char_transformer", "char_lstm"])
def test_eie_generation_equals_dense_fixed_point_bit_for_bit(kind):
    model = small(kind, num_layers=1)  # every kind of layer once
    rng = np.random.default_rng(1)
    decode.prune_magnitude(model, 0.5)
    kmeans.share_model(model, 4)
    for _, layer in compressible_layers(model):
        codes = np.asarray(layer.codes[...])
        assert np.mean(codes == 0) == pytest.approx(0.5, abs=0.01) and codes.max() <= 15
    calib = rng.integers(1, VOCAB, (4, 16))
    programs = decode.calibrate(model, calib, eie.EIEConfig(8))
    chip = on_eie.EIESession(model, programs=programs)
    oracle = on_eie.EIESession(model, programs=programs, backend="fixed_point")
    ids, logits = decode.generate(model, chip, [1, 2], 15, temperature=0.8, seed=0)
    ids2, logits2 = decode.generate(model, oracle, [1, 2], 15, temperature=0.8, seed=0)
    assert ids == ids2
    np.testing.assert_array_equal(logits, logits2)  # 2 + 15 > 16: the cache is rebuilt once
    report = chip.report(num_inputs=15)
    assert {f.vectors for f in report.layers} == {15}  # only sampled steps are recorded
    assert len(report.layers) == len(compressible_layers(model))
    text = rng.integers(1, VOCAB, 33)
    ours, theirs, targets = decode.teacher_forced(model, chip, text, 16, 4)
    fixed, _, _ = decode.teacher_forced(model, oracle, text, 16, 4)
    np.testing.assert_array_equal(ours, fixed)
    assert ours.shape == theirs.shape == (32, VOCAB) and targets.shape == (32,)  # 2 x 16
    assert np.mean(ours.argmax(-1) == theirs.argmax(-1)) >= 0.9
    assert abs(decode.nats_per_char(ours, targets) - decode.nats_per_char(theirs, targets)) < 0.05


def test_compile_counter_sees_compiles():
    with decode_run.CompileCounter() as counter:
        jax.jit(lambda x: x * 3 + 1)(np.arange(7.0))
    assert counter.count >= 1


@pytest.mark.slow
def test_smoke_pipeline(tmp_path):
    """The whole pipeline with a recipe other than the default (magnitude pruning, plain
    per-layer k-means: prune_magnitude and share_model, tested above bit for bit)."""
    config = char_transformer.get_config("smoke")
    assert (config.generate.rule, config.generate.quantizer) == ("magnitude", "kmeans_layer")
    config.data.data_dir = synthetic_text.write_corpus(str(tmp_path / "texts"))
    config.data.validation_works, config.data.test_works = ("beta",), ("gamma",)
    recipe = dict(rule="sparsegpt", quantizer="squeezellm_layer", finetune=True)
    config.generate.update(prompt="To", **recipe)
    result = decode_run.run(config, str(tmp_path / "run"), log=lambda s: None)
    assert result["recipe"] == recipe
    f = result["fidelity"]
    assert f["eie_equals_fixed_point"] and f["chars"] == 64
    assert result["generation"]["compiles_after_first_token"] == 0
    assert len(result["generation"]["text"]) == config.generate.num_chars
    t = result["per_token"]
    assert t["rtl_cycles"] > 0 and t["paper_cycles"] > 0 and t["energy_uj"] > 0
    assert result["per_layer"]["blocks.0.down"]["density"] < 1  # after the ReLU
    markdown = (tmp_path / "run" / "generate" / "result.md").read_text()
    assert markdown == decode_run.to_markdown(result)
    # SparseGPT keeps half of every row; the fine-tuned table stays a table
    assert (
        "50% pruned by sparsegpt, 4-bit per-layer Fisher-weighted k-means (fine-tuned)" in markdown
    )


def test_prompt_outside_the_vocabulary_is_a_user_error(tmp_path):
    corpus = type("C", (), {"vocab": "\0ab"})()
    with pytest.raises(decode_run.UserError, match="prompt"):
        decode_run._encode(corpus, "abc")


def test_bias_correction_cancels_the_truncation_drift():
    model = small("char_transformer")
    decode.prune_magnitude(model, 0.5)
    kmeans.share_model(model, 4)
    ids = np.random.default_rng(2).integers(1, VOCAB, (8, 16))
    base = eie.EIEConfig(8)
    plain = decode.calibrate(model, ids, base, bias_correction=False)
    fixed = decode.calibrate(model, ids, base)
    record = on_eie.record_inputs(model, jax.numpy.asarray(ids))
    name = "blocks.0.down"  # 64 inputs, about 32 nonzero weights per row
    x, cfg = record[name], plain[name][1]
    assert fixed[name][1] == cfg  # the same formats; only the bias moves
    lsb = 2.0**-cfg.act_frac_bits
    drift = {}
    for label, (layer, _) in (("plain", plain[name]), ("corrected", fixed[name])):
        out = hardware.fixed_point_forward([layer], x, [cfg])
        exact = x @ plain[name][0].dense().T + plain[name][0].bias
        drift[label] = np.mean(exact - out) / lsb
    assert drift["plain"] > 3  # truncation: every output too low by several LSBs
    assert abs(drift["corrected"]) < drift["plain"] / 3


@pytest.mark.parametrize(
    "field,value", [("sparsity", 1.0), ("num_chars", 0), ("temperature", 0.0), ("num_pes", 0)]
)
def test_bad_generate_fields_are_user_errors(field, value):
    config = char_transformer.get_config("smoke")
    config.generate[field] = value
    with pytest.raises(UserError, match=f"^config.generate.{field}={value}: allowed: "):
        lm_study.validate(config)
