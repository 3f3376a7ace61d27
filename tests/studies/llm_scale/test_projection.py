"""The LLM-scale projection (studies/llm_scale/projection.py): its timing-only path against the full
simulator, the per-token sums and the streaming rule, and a `:smoke` run."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import memory
from eie_jax.studies.llm_scale import projection as llm_scale
from tests.helpers import png_size, run_entry_point


@pytest.mark.parametrize("sparsity,density", [(0.0, 1.0), (0.7, 0.4), (0.9, 1.0)])
def test_matrix_run_matches_the_full_simulator(sparsity, density):
    cfg = eie.EIEConfig(num_pes=8)
    shape = llm_scale.Shape("m", 40, 56, 3, density)
    run = llm_scale.simulate_matrix(shape, sparsity, cfg, np.random.default_rng(5))
    # The same random draws, through encode + eie.simulate.
    rng = np.random.default_rng(5)
    codes = llm_scale.synthetic_codes(40, 56, sparsity, rng)
    active = np.zeros(56, bool)
    active[rng.permutation(56)[: round(density * 56)]] = True
    layer = eie.encode(codes, llm_scale.CODEBOOK, cfg)
    res = eie.simulate(layer, jnp.asarray(active.astype(np.float32)), cfg)
    assert run.cycles == int(res.total_cycles)
    assert run.load_efficiency == pytest.approx(float(res.load_efficiency), rel=1e-6)
    assert run.entries == layer.num_entries and run.padding == layer.num_padding
    assert run.stored_bytes["spmat"] == int(layer.spmat_bytes.sum())
    assert run.stored_bytes["ptr"] == int(layer.ptr_bytes.sum())
    # The energy from counts is the event model of the full simulation's run.
    full = eie.energy.layer_energy(layer, jnp.asarray(active.astype(np.float32)), res, cfg)
    assert run.total_energy_uj == pytest.approx(full.energy_uj, rel=1e-12)
    assert np.mean(codes == 0) == pytest.approx(sparsity, abs=0.05)


def test_per_token_sums_and_streaming():
    cfg = eie.EIEConfig(num_pes=4)
    rng = np.random.default_rng(0)
    shapes = [llm_scale.Shape("a", 16, 8, 3, 1.0), llm_scale.Shape("b", 8, 16, 2, 0.5)]
    runs = [llm_scale.simulate_matrix(s, 0.5, cfg, rng) for s in shapes]
    tok = llm_scale.per_token(shapes, runs, cfg, [1e-6, 1e6])
    assert tok["cycles"] == 3 * runs[0].cycles + 2 * runs[1].cycles
    assert tok["eie_bytes"] == sum(c * r.weight_bytes for c, r in zip((3, 2), runs, strict=True))
    slow, fast = tok["dram"][1e-6], tok["dram"][1e6]
    assert slow["time_us"] == pytest.approx(slow["memory_us"])  # memory-bound everywhere
    assert fast["time_us"] == pytest.approx(tok["compute_us"])  # compute-bound everywhere
    assert slow["memory_bound_matrices"] == "5/5" and fast["memory_bound_matrices"] == "0/5"
    assert slow["energy_mj"] > fast["energy_mj"] > tok["compute_energy_uj"] * 1e-3
    assert fast["int4_g128_tokens_per_s"] == pytest.approx(
        1e6 / memory.dram_us(tok["weights"] * 4.16 / 8, 1e6)
    )


def test_crossover():
    assert llm_scale.crossover([0, 0.5, 1], [1, 1, 1], [4, 2, 0.5]) == pytest.approx(0.75)
    assert llm_scale.crossover([0, 1], [1, 1], [4, 2]) is None


@pytest.mark.slow
def test_smoke_experiment(tmp_path):
    cmd = [
        "experiments.llm_scale",
        "--config=configs/llm_scale.py:smoke", f"--workdir={tmp_path}",
    ]  # fmt: skip
    out = run_entry_point(*cmd, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "llm_scale.json") as f:
        result = json.load(f)
    assert [r["sparsity"] for r in result["rows"]] == [0.0, 0.9]
    assert result["rows"][1]["cycles"] < result["rows"][0]["cycles"]
    assert png_size(tmp_path / "llm_scale_tokens_per_s.png") == (912, 672)  # 7.6 x 5.6 in, 120 dpi
    bad = run_entry_point(*cmd, "--config.sparsities=(0.9, 0.5)", timeout=300)
    assert bad.returncode == 2 and "sparsities" in bad.stderr
