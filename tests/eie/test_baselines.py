"""The Table IV/V baselines reproduce the paper's own Fig. 6 bars (a check of the data)."""

import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import baselines, benchmarks, energy
from experiments import fig_eie_vs_cpu

# ISCA 2016 Fig. 6, speedup over CPU dense, rounded as printed.
PAPER_FIG6 = {
    "CPU compressed": (2, 5, 1, 9, 10, 1, 2, 3, 2),
    "GPU dense": (14, 25, 14, 24, 22, 10, 9, 15, 9),
    "GPU compressed": (56, 94, 21, 210, 135, 16, 34, 33, 25),
    "mGPU compressed": (3, 5, 1, 8, 9, 1, 3, 2, 1),
}


def test_baseline_speedups_round_to_the_papers_fig6():
    speed, eff = baselines.baseline_bars()
    for name, printed in PAPER_FIG6.items():
        np.testing.assert_array_equal(np.round(speed[name]), printed, err_msg=name)
    np.testing.assert_array_equal(speed["CPU dense"], 1.0)
    np.testing.assert_array_equal(eff["CPU dense"], 1.0)
    assert round(baselines.geomean(baselines.PAPER_FIG6_EIE)) == baselines.PAPER_FIG6_GEOMEAN
    assert (
        abs(baselines.geomean(baselines.PAPER_FIG7_EIE) / baselines.PAPER_FIG7_GEOMEAN - 1) < 0.01
    )


def test_eie_layer_figures_are_the_full_simulation_and_the_event_model():
    """fig_eie_vs_cpu's row of a layer (through figures.LayerFigures) against eie.simulate and
    energy.layer_energy run directly on the same synthetic layer."""
    spec = benchmarks.LayerSpec("small", 48, 40, 0.2, 0.5)
    cfg = eie.EIEConfig(num_pes=8)
    row = fig_eie_vs_cpu.eie_layer(spec, cfg, seed=3)
    codes, codebook, x = benchmarks.synthetic_layer(spec, 3, cfg)
    layer = eie.encode(codes, codebook, cfg)
    paper = eie.simulate(layer, jnp.asarray(x), cfg)
    rtl_cfg = cfg.replace(timing="rtl")
    rtl = eie.simulate(layer, jnp.asarray(x), rtl_cfg)
    e = energy.layer_energy(layer, x, rtl, rtl_cfg)
    assert row["paper_cycles"] == int(paper.total_cycles)
    assert row["rtl_cycles"] == int(rtl.total_cycles)
    assert row["energy_uj"] == pytest.approx(e.energy_uj, rel=1e-12)
    for event, value in e.breakdown_uj.items():
        assert row["energy_breakdown_uj"][event] == pytest.approx(value, rel=1e-12, abs=1e-15)
    for merit in ("power_w", "pj_per_useful_mac", "gops", "gops_per_watt"):
        assert row[merit] == pytest.approx(getattr(e, merit), rel=1e-9)
