"""EIE's energy model (Table II) on layers whose activity is known by construction."""

import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import energy

CODEBOOK = np.linspace(0, 1.5, 16).astype(np.float32)


def run(codes, x, cfg):
    layer = eie.encode(codes, CODEBOOK, cfg)
    res = eie.simulate(layer, x, cfg)
    return layer, res, energy.layer_energy(layer, x, res, cfg)


def test_fully_busy_pe_draws_table_ii_power():
    """One entry of a new broadcast every cycle: Table II's 9.157 mW at 800 MHz."""
    cfg = eie.EIEConfig(num_pes=1)
    _, res, e = run(np.ones((1, 50), int), np.ones(50, np.float32), cfg)
    assert int(res.total_cycles) == 50 and e.breakdown_uj["idle"] == 0.0
    assert float(e.pe_power_mw[0]) == pytest.approx(9.157, rel=1e-12)


def test_fully_busy_chip_draws_table_v_power():
    """64 busy PEs + 21 LNZD units: 64 x 9.157 mW + 21 x 0.023 mW = 0.5865 W (Table V: 0.59)."""
    cfg = eie.EIEConfig(num_pes=64)
    _, _, e = run(np.ones((64, 40), int), np.ones(40, np.float32), cfg)
    assert energy.lnzd_units(64) == 21
    assert e.power_w == pytest.approx(64 * 9.157e-3 + 21 * 0.023e-3, rel=1e-12)
    assert round(e.power_w, 2) == 0.59


def test_idle_cycles_cost_the_clock_network():
    """PE 0 has 3 entries per column, PE 1 none: PE 1 reads pointers, then idles 2 of 3 cycles."""
    cfg = eie.EIEConfig(num_pes=2)
    codes = np.zeros((6, 10), int)
    codes[0::2] = 5  # rows 0, 2, 4 live on PE 0
    _, res, e = run(codes, np.ones(10, np.float32), cfg)
    assert int(res.total_cycles) == 30
    assert e.breakdown_uj["idle"] == pytest.approx(20 * energy.IDLE_PJ * 1e-6)
    pe1_pj = 10 * energy.BROADCAST_PJ + 20 * energy.IDLE_PJ
    assert float(e.pe_power_mw[1]) == pytest.approx(pe1_pj * 800 * 1e-3 / 30)
    assert e.pe_power_mw[0] > e.pe_power_mw[1]


def test_useful_macs_and_dense_equivalent_throughput():
    rng = np.random.default_rng(0)
    cfg = eie.EIEConfig(num_pes=4, index_bits=2)
    codes = np.where(rng.random((40, 30)) < 0.1, 3, 0)  # sparse: padding appears
    x = (rng.random(30) < 0.5).astype(np.float32)
    layer, res, e = run(codes, x, cfg)
    assert layer.num_padding > 0
    assert e.useful_macs == int(np.count_nonzero(codes[:, x != 0]))
    assert e.dense_ops == 2 * 40 * 30
    assert e.gops == pytest.approx(2 * 40 * 30 / (float(res.time_us) * 1e3))
    assert e.gops_per_watt == pytest.approx(e.gops / e.power_w)
    assert e.pj_per_useful_mac == pytest.approx(1e6 * e.energy_uj / e.useful_macs)
