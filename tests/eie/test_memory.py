"""EIE's SRAM capacities, the bytes encode records, and DRAM streaming."""

import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import energy, memory
from eie_jax.utils.cli import UserError

CODEBOOK = np.linspace(0, 1.5, 16).astype(np.float32)


def test_encode_records_per_pe_bytes():
    rng = np.random.default_rng(0)
    cfg = eie.EIEConfig(num_pes=3, index_bits=2)
    codes = np.where(rng.random((50, 20)) < 0.3, 7, 0)
    layer = eie.encode(codes, CODEBOOK, cfg)
    entries = layer.colptr[:, -1]
    # 4 + 2 = 6-bit entries in 64-bit rows; 16-bit pointers p[0..K]; 16-bit activations
    # in and out.
    np.testing.assert_array_equal(layer.spmat_bytes, -(-entries * 6 // 64) * 8)
    np.testing.assert_array_equal(layer.ptr_bytes, [2 * 21] * 3)
    np.testing.assert_array_equal(layer.act_bytes, [2 * (7 + 17)] * 3)
    assert memory.plan(layer, cfg).fits


def test_a_layer_that_does_not_fit_names_the_sram():
    cfg = eie.EIEConfig(num_pes=2, spmat_kb=0.25)  # 256 bytes per PE
    layer = eie.encode(np.ones((40, 30), int), CODEBOOK, cfg)  # 600 entries per PE
    with pytest.raises(UserError, match=r"Spmat SRAM needs 600 bytes per PE but holds 256"):
        memory.plan(layer, cfg)
    short_ptr = cfg.replace(spmat_kb=128.0, ptr_kb=0.03125)  # 32 bytes < 2 * 31
    with pytest.raises(UserError, match=r"Ptr SRAM needs 62 bytes.*holds 32 bytes"):
        memory.plan(layer, short_ptr)
    # Activations cannot stream: an error even with DRAM.
    with pytest.raises(UserError, match="Act SRAM"):
        memory.plan(layer, cfg.replace(act_kb=0.01, dram_gbps=10.0))


def test_streaming_from_dram_bounds_time_and_adds_energy():
    cfg = eie.EIEConfig(num_pes=2, spmat_kb=0.25, dram_gbps=0.5)
    codes = np.ones((40, 30), int)
    layer = eie.encode(codes, CODEBOOK, cfg)
    plan = memory.plan(layer, cfg)
    streamed = 2 * 600 + 2 * 62  # Spmat and Ptr bytes of both PEs
    assert not plan.fits and plan.dram_bytes == streamed
    assert plan.dram_us == pytest.approx(streamed / 500.0)  # 0.5 GB/s = 500 bytes/us
    assert plan.dram_energy_uj == pytest.approx(streamed / 4 * 640e-6)
    x = np.ones(30, np.float32)
    res = eie.simulate(layer, x, cfg)
    compute_us = float(res.time_us)
    assert plan.time_us(compute_us) == max(compute_us, plan.dram_us) == plan.dram_us
    e = energy.layer_energy(layer, x, res, cfg, plan)
    assert e.time_us == plan.dram_us and e.breakdown_uj["dram"] == plan.dram_energy_uj
    on_chip = energy.layer_energy(layer, x, res, cfg)
    assert e.energy_uj > on_chip.energy_uj + plan.dram_energy_uj  # idle while waiting


def test_bad_memory_config_is_rejected():
    for field, value in [("spmat_kb", 0.0), ("ptr_kb", -1.0), ("dram_gbps", -2.0)]:
        with pytest.raises(ValueError, match=field):
            eie.EIEConfig(**{field: value})
