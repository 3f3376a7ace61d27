"""The FC-layer bridge: EIE runs equal the dense fixed-point forward, bit for bit."""

import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import fc_layer as hardware


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
    h = x
    for layer, cfg in zip(layers, cfgs, strict=True):  # EIE's ReLU fused, as the chip does
        encoded = eie.encode(layer.codes, layer.codebook, cfg)
        res = eie.simulate_batch(encoded, jnp.asarray(h), cfg, relu=layer.relu, bias=layer.bias)
        ref = hardware.fixed_point_forward([layer], h, [cfg])
        np.testing.assert_array_equal(np.asarray(res.outputs), ref)
        assert np.any(np.asarray(res.total_cycles) > 0)
        h = ref
    np.testing.assert_allclose(h, hardware.float_forward(layers, x)[-1], atol=0.05)
    np.testing.assert_array_equal(h, hardware.fixed_point_forward(layers, x, cfgs))


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
