"""The FC-stack bridge: EIE runs equal the dense fixed-point forward, bit for bit."""

import numpy as np
import pytest

from eie_jax import eie, hardware


def random_stack(rng, sizes=(40, 30, 20, 10), density=0.3):
    layers = []
    for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        codes = np.where(rng.random((m, k)) < density, rng.integers(1, 16, (m, k)), 0)
        codebook = np.concatenate([[0.0], np.sort(rng.standard_normal(15) * 0.5)])
        layers.append(
            hardware.FCLayer(
                name=f"fc{i + 1}",
                codes=codes,
                codebook=codebook.astype(np.float32),
                bias=(0.1 * rng.standard_normal(m)).astype(np.float32),
                relu=i < len(sizes) - 2,
            )
        )
    return layers


def test_eie_run_equals_dense_fixed_point_and_is_close_to_float():
    rng = np.random.default_rng(0)
    layers = random_stack(rng)
    x = np.maximum(rng.standard_normal((50, 40)), 0).astype(np.float32)
    cfgs = hardware.calibrate(layers, x, eie.EIEConfig(num_pes=8))
    out, runs = hardware.run_on_eie(layers, x, cfgs, batch_size=16)
    ref = hardware.fixed_point_forward(layers, x, cfgs)
    np.testing.assert_array_equal(out, ref)
    float_out = hardware.float_forward(layers, x)[-1]
    np.testing.assert_allclose(out, float_out, atol=0.05)
    assert [r.name for r in runs] == ["fc1", "fc2", "fc3"]
    assert all(r.cycles > 0 and 0 < r.load_efficiency <= 1 for r in runs)
    assert runs[0].time_us == pytest.approx(runs[0].cycles / 800.0)


@pytest.mark.parametrize(
    "max_abs, headroom, bits",
    [(0.9, 0, 15), (1.0, 0, 14), (1.5, 0, 14), (20.0, 1, 9), (0.0, 1, 14)],
)
def test_frac_bits_leave_room_for_the_largest_value(max_abs, headroom, bits):
    assert hardware.frac_bits_for(max_abs, headroom) == bits
    if max_abs:
        assert max_abs * 2**bits < 2**15


def test_calibration_sets_per_layer_bits():
    rng = np.random.default_rng(1)
    layers = random_stack(rng)
    x = 100 * np.abs(rng.standard_normal((20, 40))).astype(np.float32)
    cfgs = hardware.calibrate(layers, x, eie.EIEConfig(), headroom_bits=0)
    acts = hardware.float_forward(layers, x)
    for i, cfg in enumerate(cfgs):
        biggest = max(np.abs(acts[i]).max(), np.abs(acts[i + 1]).max())
        assert biggest * 2**cfg.act_frac_bits < 2**15 <= biggest * 2 ** (cfg.act_frac_bits + 1)
