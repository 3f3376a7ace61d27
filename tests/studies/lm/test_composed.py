"""Pruning then quantization composed (studies/lm/methods/composed.py) and the report's
read-off at bit budgets (studies/lm/report.py)."""

import numpy as np
import pytest

from configs import char_transformer
from eie_jax.compression.layers import compressible_layers
from eie_jax.studies.lm import report
from eie_jax.studies.lm import study as lm_study
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count
from eie_jax.studies.lm.methods import composed
from tests import synthetic_text


@pytest.mark.parametrize(
    "target,ok,parsed",
    [("0.5", True, dict(sparsity=0.5)), ("2:4", True, dict(n=2, m=4)), ("4:4", False, None),
     ("1.0", False, None), ("0", False, None), ("half", False, None), (0.5, False, None)],
)  # fmt: skip
def test_targets(target, ok, parsed):
    assert composed.target_ok(target) is ok
    if ok:
        assert composed.parse_target(target) == parsed


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    texts = synthetic_text.write_corpus(tmp_path_factory.mktemp("texts"))
    config = char_transformer.get_config("smoke")
    config.data.update(data_dir=texts, validation_works=("beta",), test_works=("gamma",))
    corpus = lm_study.load_corpus(config)
    model = lm.build_model(config, corpus.vocab_size)
    lm.train(model, corpus, config, steps=20, learning_rate=2e-3, stage="dense")
    return config, corpus, model


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule,target,quantizer",
    [("sparsegpt", "2:4", "squeezellm_layer"), ("wanda", "0.7", "kmeans_layer")],
)
def test_pruned_then_shared_keeps_the_mask_through_fine_tuning(setup, rule, target, quantizer):
    config, corpus, dense = setup
    model = lm.copy(dense)
    composed.prune_model(model, corpus, config, rule, target)
    masks = {n: np.asarray(lay.hardware_mask()) != 0 for n, lay in compressible_layers(model)}
    for mask in masks.values():
        if target == "2:4":  # at most 2 of every 4 consecutive inputs of a row
            assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) <= 2).all()
        else:  # each row keeps round(0.3 K)
            assert (mask.sum(1) == round(0.3 * mask.shape[1])).all()
    composed.share(model, corpus, config, quantizer, bits=3)
    lm.train(model, corpus, config, steps=5, learning_rate=1e-3, stage="fine-tune")
    for name, layer in compressible_layers(model):
        codes = np.asarray(layer.hardware_codes())
        w = np.asarray(layer.hardware_matrix())
        assert codes.max() <= 7 and len(np.unique(codes)) <= 8
        # every survivor of pruning keeps a code, nothing pruned comes back
        np.testing.assert_array_equal(codes != 0, masks[name])
        assert (w[~masks[name]] == 0).all()
        assert len(np.unique(w)) <= 8  # one 3-bit table per layer (entry 0: zero)


@pytest.mark.slow
def test_study_rows_count_bits_in_both_formats(setup, tmp_path):
    config, corpus, _ = setup
    config = config.copy_and_resolve_references()
    config.quantize.methods = ("pruned_kmeans",)
    config.compose.update(rules=("wanda",), targets=("0.5",), bits=(4,), finetune=False)
    config.bootstrap.samples = 0
    results = lm_study.run(config, str(tmp_path / "w"))
    rows = {r["name"]: r for r in results["rows"]}
    assert list(rows) == ["wanda_0.5", "wanda_0.5_squeezellm_layer_b4"]
    pruned, shared = rows["wanda_0.5"], rows["wanda_0.5_squeezellm_layer_b4"]
    assert pruned["bits"] == 32 and pruned["sparsity"] == 0.5 and not pruned["runs_on_eie"]
    assert shared["runs_on_eie"] and (shared["rule"], shared["quantizer"]) == (
        "wanda",
        "squeezellm_layer",
    )
    # Both formats counted on the model the job made, rebuilt here the same way
    workdir = str(tmp_path / "w")
    model, _ = lm.restore_dense(
        workdir + "/dense", lambda: lm.build_model(config, len(results["dense"]["vocab"]))
    )
    composed.prune_model(model, corpus, config, "wanda", "0.5")
    composed.share(model, corpus, config, "squeezellm_layer", 4)
    layers = compressible_layers(model)
    weights = sum(np.asarray(lay.hardware_codes()).size for _, lay in layers)
    st = config.storage
    dc = sum(bit_count.layer_codebook(lay.hardware_codes(), 4, index_bits=4) for _, lay in layers)
    eie = sum(
        bit_count.layer_codebook_eie(lay.hardware_codes(), 4, st.eie_num_pes, st.eie_index_bits)
        for _, lay in layers
    )
    assert shared["bits_per_weight"] == dc / weights
    assert shared["eie_bits_per_weight"] == eie / weights
    assert 4.0 <= shared["bits_per_weight"] < 4.5  # 4-bit codes + 4-bit indices, half kept


def _row(name, method, bits_per_weight, nats, *, eie=None, finetuned=False):
    row = dict(
        name=name, method=method, bits=4, bits_per_weight=bits_per_weight,
        eie_bits_per_weight=eie, test_nats=nats, finetuned=finetuned,
        runs_on_eie=eie is not None,
    )  # fmt: skip
    if method == "pruned_kmeans":
        row.update(rule=name.split("_")[0], target=name.split("_")[1])
    return row


def test_read_off_takes_each_familys_best_row_within_the_budget():
    results = dict(
        dense=dict(test_nats=1.5),
        rows=[
            _row("gptq_g128_b3", "gptq_g128", 3.125, 1.60),
            _row("gptq_g128_b4", "gptq_g128", 4.125, 1.52),
            _row("sparsegpt_0.5_squeezellm_layer_b4", "pruned_kmeans", 4.02, 1.55, eie=5.1),
            _row("sparsegpt_0.7_squeezellm_layer_b4", "pruned_kmeans", 2.41, 1.70, eie=3.0),
            _row("sparsegpt_0.7_squeezellm_layer_b4_ft", "pruned_kmeans", 2.41, 1.65, eie=3.0,
                 finetuned=True),
            _row("kmeans_row_b4", "kmeans_row", 4.5, 1.51),
        ],
    )  # fmt: skip
    dc = {e["family"]: e for e in report.read_off(results, "dc")}
    assert dc["gptq_g128"]["3.125"] == ("gptq_g128_b3", 1.60)
    assert dc["gptq_g128"]["4.125"] == ("gptq_g128_b4", 1.52)
    assert dc["sparsegpt + k-means"]["3.125"] == ("sparsegpt_0.7_squeezellm_layer_b4", 1.70)
    assert dc["sparsegpt + k-means"]["4.125"] == ("sparsegpt_0.5_squeezellm_layer_b4", 1.55)
    assert dc["sparsegpt + k-means ft"]["4.125"][1] == 1.65
    assert dc["kmeans_row"] == {"family": "kmeans_row", "3.125": None, "4.125": None}
    eie = {e["family"]: e for e in report.read_off(results, "eie")}
    assert eie["sparsegpt + k-means"]["3.125"] == ("sparsegpt_0.7_squeezellm_layer_b4", 1.70)
    assert eie["sparsegpt + k-means"]["4.125"] == ("sparsegpt_0.7_squeezellm_layer_b4", 1.70)
    assert eie["gptq_g128"] == {"family": "gptq_g128", "3.125": None, "4.125": None}  # not on EIE
    table = "\n".join(report.read_off_markdown(results))
    assert "| kmeans_row | - | - | - | - |" in table
    assert "| gptq_g128 | 1.6000 (+0.1000) | 1.5200 (+0.0200) | - | - |" in table


@pytest.mark.slow
def test_calibrated_methods_run_on_every_calibration_draw(setup, tmp_path):
    config, _, _ = setup
    config = config.copy_and_resolve_references()
    config.quantize.update(methods=("rtn_sym_channel", "squeezellm_layer"), calibration_draws=2)
    config.bootstrap.samples = 100
    rows = {r["name"]: r for r in lm_study.run(config, str(tmp_path / "two"))["rows"]}
    plain, fisher = rows["rtn_sym_channel_b4"], rows["squeezellm_layer_b4"]
    assert "draws" not in plain and np.ndim(plain["test_windows"]) == 1  # not calibrated
    assert fisher["draws"] == 2 and np.shape(fisher["test_windows"]) == (
        2,
        len(plain["test_windows"]),
    )
    assert fisher["test_nats"] == pytest.approx(np.mean(fisher["draw_nats"]), abs=1e-12)
    assert fisher["draw_nats"][0] != fisher["draw_nats"][1]  # another set of windows
    config.quantize.calibration_draws = 1  # the first draw is the one-draw study's set
    one = {r["name"]: r for r in lm_study.run(config, str(tmp_path / "one"))["rows"]}
    assert one["squeezellm_layer_b4"]["test_nats"] == fisher["draw_nats"][0]
    assert one["rtn_sym_channel_b4"]["test_nats"] == plain["test_nats"]
