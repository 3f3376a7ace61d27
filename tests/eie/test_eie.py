"""The EIE model against the NumPy oracle (exact), its gradients, and its input checks."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax import eie
from tests.oracle import eie_oracle

NUM_CASES = 210


def random_case(seed):
    """A random layer, input and design point covering the issue's ranges."""
    rng = np.random.default_rng(seed)
    m = int(np.exp(rng.uniform(0, np.log(300))))
    k = int(np.exp(rng.uniform(0, np.log(200))))
    if seed % 7 == 0:  # make sure the largest shapes appear
        m, k = 300, 200
    density = rng.choice([0.0, 0.02, 0.1, 0.3, 0.7, 1.0, rng.uniform()])
    weight_bits = 4
    cfg = eie.EIEConfig(
        num_pes=int(rng.choice([1, 2, 3, 4, 8, 16, 64])),
        fifo_depth=int(rng.choice([1, 2, 8, 64])),
        index_bits=int(rng.choice([2, 3, 4])),
        weight_bits=weight_bits,
        act_frac_bits=int(rng.choice([6, 8, 10])),
        weight_frac_bits=int(rng.choice([8, 12, 14])),
    )
    codes = np.where(rng.random((m, k)) < density, rng.integers(1, 16, (m, k)), 0)
    scale = rng.choice([0.1, 1.0, 4.0])  # large codebooks drive accumulators into saturation
    codebook = np.concatenate([[0.0], scale * rng.standard_normal(15)]).astype(np.float32)
    x = rng.standard_normal(k) * rng.choice([0.5, 3.0, 200.0], size=k, p=[0.6, 0.3, 0.1])
    x = np.where(rng.random(k) < rng.uniform(0.2, 1.0), x, 0.0).astype(np.float32)
    bias = rng.standard_normal(m) if seed % 2 else None
    relu = bool(seed % 3 == 0)
    return codes, codebook, x, cfg, relu, bias


def run_oracle(codes, codebook, x, cfg, relu, bias):
    return eie_oracle.simulate(
        codes,
        codebook,
        x,
        num_pes=cfg.num_pes,
        fifo_depth=cfg.fifo_depth,
        index_bits=cfg.index_bits,
        act_frac_bits=cfg.act_frac_bits,
        weight_frac_bits=cfg.weight_frac_bits,
        relu=relu,
        bias=bias,
    )


@pytest.mark.parametrize("seed", range(NUM_CASES))
def test_simulate_matches_oracle(seed):
    codes, codebook, x, cfg, relu, bias = random_case(seed)
    layer = eie.encode(codes, codebook, cfg)
    res = eie.simulate(layer, x, cfg, relu=relu, bias=bias)
    outputs, pe_cycles, pe_busy, total = run_oracle(codes, codebook, x, cfg, relu, bias)
    np.testing.assert_array_equal(np.asarray(res.outputs, np.float64), outputs)
    np.testing.assert_array_equal(res.pe_cycles, pe_cycles)
    np.testing.assert_array_equal(res.pe_busy, pe_busy)
    assert int(res.total_cycles) == total
    assert float(res.time_us) == pytest.approx(total / cfg.clock_mhz)
    if total:
        assert float(res.load_efficiency) == pytest.approx(pe_busy.mean() / total)


@pytest.mark.parametrize("seed", range(0, NUM_CASES, 5))
def test_encode_matches_oracle(seed):
    codes, codebook, _, cfg, _, _ = random_case(seed)
    layer = eie.encode(codes, codebook, cfg)
    pes = eie_oracle.encode(codes, cfg.num_pes, cfg.index_bits)
    for pe, ref in enumerate(pes):
        used = len(ref["codes"])
        np.testing.assert_array_equal(layer.codes[pe, :used], ref["codes"])
        np.testing.assert_array_equal(layer.z[pe, :used], ref["z"])
        np.testing.assert_array_equal(layer.colptr[pe], ref["colptr"])
        assert not layer.codes[pe, used:].any()
    assert layer.num_entries == sum(len(ref["codes"]) for ref in pes)
    assert layer.num_padding == sum(sum(1 for c in ref["codes"] if c == 0) for ref in pes)
    # The device view agrees with the stream: slice j of PE k holds entries p[j]..p[j+1].
    counts = np.asarray(layer.counts)
    np.testing.assert_array_equal(counts, np.diff(layer.colptr, axis=1))
    np.testing.assert_array_equal(
        counts, eie.column_counts(codes, cfg.num_pes, cfg.index_bits, cfg.weight_bits)
    )
    slice_codes = np.asarray(layer.slice_codes)
    slice_rows = np.asarray(layer.slice_rows)
    for pe, ref in enumerate(pes):
        for j in range(codes.shape[1]):
            lo, hi = ref["colptr"][j], ref["colptr"][j + 1]
            np.testing.assert_array_equal(slice_codes[j, pe, : hi - lo], ref["codes"][lo:hi])
            np.testing.assert_array_equal(slice_rows[j, pe, : hi - lo], ref["rows"][lo:hi])


@pytest.mark.parametrize(
    "codes, weight_bits, match",
    [
        ([[1, -1]], 4, r"codes: values must be in \[0, 2\*\*weight_bits\) = \[0, 16\), got min -1"),
        ([[16, 0]], 4, r"\[0, 16\), got min 0, max 16"),
        ([[256, 0]], 8, r"\[0, 256\), got min 0, max 256"),
        ([[1.0, 0.0]], 4, "codes: expected integers"),
        ([1, 2], 4, "codes: expected a 2-D"),
    ],
)
def test_column_counts_rejects_codes_out_of_range(codes, weight_bits, match):
    with pytest.raises(ValueError, match=match):
        eie.column_counts(np.asarray(codes), 2, 4, weight_bits)
    # The same codes one bit wider are counted.
    if match.startswith(r"\[0, 16"):
        assert eie.column_counts(np.asarray(codes), 2, 4, 5).sum() == 1


def test_paper_example():
    """ISCA 2016 Fig. 3 text: [0,0,1,2, eighteen zeros, 3] -> v=[1,2,0,3], z=[2,0,15,2]."""
    column = np.array([0, 0, 1, 2] + [0] * 18 + [3])[:, None]
    cfg = eie.EIEConfig(num_pes=1, index_bits=4)
    layer = eie.encode(column, np.linspace(0, 1.5, 16), cfg)
    np.testing.assert_array_equal(layer.codes[0], [1, 2, 0, 3])
    np.testing.assert_array_equal(layer.z[0], [2, 0, 15, 2])
    np.testing.assert_array_equal(layer.colptr[0], [0, 4])
    assert (layer.num_entries, layer.num_padding) == (4, 1)


def _check_against_oracle(codes, codebook, x, cfg, relu=False, bias=None):
    res = eie.simulate(eie.encode(codes, codebook, cfg), x, cfg, relu=relu, bias=bias)
    outputs, pe_cycles, pe_busy, total = run_oracle(codes, codebook, x, cfg, relu, bias)
    np.testing.assert_array_equal(np.asarray(res.outputs, np.float64), outputs)
    np.testing.assert_array_equal(res.pe_cycles, pe_cycles)
    np.testing.assert_array_equal(res.pe_busy, pe_busy)
    assert int(res.total_cycles) == total
    return res


CODEBOOK = np.concatenate([[0.0], np.linspace(-1, 1, 15) + 0.01]).astype(np.float32)


def test_all_zero_input_costs_nothing():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (40, 30))
    bias = rng.standard_normal(40)
    res = _check_against_oracle(
        codes, CODEBOOK, np.zeros(30), eie.EIEConfig(num_pes=8), relu=True, bias=bias
    )
    assert int(res.total_cycles) == 0 and float(res.load_efficiency) == 0.0
    np.testing.assert_allclose(res.outputs, np.maximum(np.round(bias * 256) / 256, 0))


def test_all_pruned_matrix_costs_one_cycle_per_broadcast():
    cfg = eie.EIEConfig(num_pes=4, fifo_depth=2)
    x = np.array([1.0, 0.0, -2.0, 3.0, 0.0])
    res = _check_against_oracle(np.zeros((9, 5), int), CODEBOOK, x, cfg)
    assert int(res.total_cycles) == 3  # three broadcasts, one pointer-read cycle each
    assert not np.asarray(res.outputs).any()


def test_fewer_rows_than_pes_and_single_column():
    rng = np.random.default_rng(2)
    cfg = eie.EIEConfig(num_pes=64)
    _check_against_oracle(rng.integers(0, 16, (5, 20)), CODEBOOK, rng.standard_normal(20), cfg)
    _check_against_oracle(rng.integers(0, 16, (50, 1)), CODEBOOK, np.array([0.7]), cfg)
    _check_against_oracle(rng.integers(0, 16, (1, 1)), CODEBOOK, np.array([-0.7]), cfg)


def test_saturation_happens_and_is_exact():
    """Large weights and inputs push accumulators past int16 mid-row: order matters."""
    cfg = eie.EIEConfig(num_pes=2)
    codebook = np.concatenate([[0.0], np.full(7, 7.9), np.full(8, -7.9)]).astype(np.float32)
    codes = np.array([[1, 1, 1, 9, 9], [9, 9, 1, 1, 1]])
    x = np.full(5, 10.0, np.float32)
    res = _check_against_oracle(codes, codebook, x, cfg)
    # Terms are +-79: row 0 saturates at +128 on its second term, then falls by 158, so it
    # ends negative although its exact sum is +79; row 1 mirrors it.
    assert float(res.outputs[0]) < 0 < float(res.outputs[1])


def test_batch_matches_single_runs():
    rng = np.random.default_rng(3)
    cfg = eie.EIEConfig(num_pes=8, fifo_depth=2)
    codes = np.where(rng.random((60, 50)) < 0.2, rng.integers(1, 16, (60, 50)), 0)
    layer = eie.encode(codes, CODEBOOK, cfg)
    xs = rng.standard_normal((6, 50)) * (rng.random((6, 50)) < 0.5)
    batch = eie.simulate_batch(layer, xs, cfg, relu=True)
    for b in range(6):
        one = eie.simulate(layer, xs[b], cfg, relu=True)
        for field in ("outputs", "pe_cycles", "pe_busy", "total_cycles"):
            np.testing.assert_array_equal(getattr(batch, field)[b], getattr(one, field))
    # jax.vmap over simulate works too.
    vm = jax.vmap(lambda x: eie.simulate(layer, x, cfg, relu=True))(jnp.asarray(xs))
    np.testing.assert_array_equal(vm.total_cycles, batch.total_cycles)


def test_batched_design_points_match_the_oracle_recurrence():
    """Per-point counts (N padded, any broadcast pattern, depths up to the history, more
    broadcasts than the history holds) batched equal the NumPy recurrence per point."""
    from eie_jax.eie import metrics

    rng = np.random.default_rng(7)
    for history in (8, 64):
        points, pes, cols = 12, 9, 3 * history + 5
        counts = rng.poisson(rng.uniform(0.2, 4, (points, 1, 1)), (points, pes, cols))
        real_pes = rng.integers(1, pes + 1, points)
        counts[np.arange(pes)[None, :] >= real_pes[:, None]] = 0  # padded PEs hold zeros
        active = rng.random((points, cols)) < rng.uniform(0, 1, (points, 1))
        depth = rng.integers(1, history + 1, points)
        cycles, busy = metrics.batched_cycles(counts, active, depth, history=history)
        for b in range(points):
            n = counts[b][:, active[b]]
            np.testing.assert_array_equal(cycles[b], eie_oracle.paper_cycles(n, depth[b]))
            np.testing.assert_array_equal(busy[b], n.sum(axis=1))


def test_cycles_only_path_matches_full_simulation():
    rng = np.random.default_rng(4)
    cfg = eie.EIEConfig(num_pes=16, fifo_depth=4)
    codes = np.where(rng.random((100, 70)) < 0.15, rng.integers(1, 16, (100, 70)), 0)
    layer = eie.encode(codes, CODEBOOK, cfg)
    x = rng.standard_normal(70) * (rng.random(70) < 0.4)
    full = eie.simulate(layer, x, cfg)
    pe_cycles, pe_busy = eie.simulate_cycles(layer, x, cfg)
    np.testing.assert_array_equal(pe_cycles, full.pe_cycles)
    np.testing.assert_array_equal(pe_busy, full.pe_busy)


def test_new_input_or_matrix_of_same_padded_shape_does_not_recompile():
    from eie_jax.eie import datapath

    rng = np.random.default_rng(5)
    cfg = eie.EIEConfig(num_pes=4)

    def layer(seed):
        r = np.random.default_rng(seed)
        codes = np.where(r.random((32, 24)) < 0.3, r.integers(1, 16, (32, 24)), 0)
        return eie.encode(codes, CODEBOOK, cfg, min_window=8)

    eie.simulate(layer(0), rng.standard_normal(24), cfg)
    before = datapath._simulate._cache_size()
    for seed in range(1, 4):
        eie.simulate(layer(seed), rng.standard_normal(24), cfg)
    assert datapath._simulate._cache_size() == before
    # Another FIFO depth with the same history length reuses it as well.
    eie.simulate(layer(9), rng.standard_normal(24), cfg.replace(fifo_depth=3))
    assert datapath._simulate._cache_size() == before


# ---------------------------------------------------------------- gradients


def test_output_gradients_match_float_model():
    rng = np.random.default_rng(6)
    cfg = eie.EIEConfig(num_pes=4, act_frac_bits=8, weight_frac_bits=12)
    codes = np.where(rng.random((30, 20)) < 0.4, rng.integers(1, 16, (30, 20)), 0)
    codebook = jnp.asarray(CODEBOOK)
    layer = eie.encode(codes, codebook, cfg)
    x = jnp.asarray(rng.standard_normal(20), jnp.float32)
    bias = jnp.asarray(0.1 * rng.standard_normal(30), jnp.float32)
    probe = jnp.asarray(rng.standard_normal(30), jnp.float32)

    def eie_loss(x, cb, b):
        return jnp.dot(
            probe, eie.simulate(layer.with_codebook(cb), x, cfg, relu=True, bias=b).outputs
        )

    def float_loss(x, cb, b):
        w = jnp.where(codes == 0, 0.0, cb[codes])
        return jnp.dot(probe, jax.nn.relu(w @ x + b))

    got = jax.grad(eie_loss, argnums=(0, 1, 2))(x, codebook, bias)
    want = jax.grad(float_loss, argnums=(0, 1, 2))(x, codebook, bias)
    # Within fixed-point resolution: the backward pass is evaluated at the quantised point.
    resolution = 2.0**-cfg.act_frac_bits * codes.size
    for g, w in zip(got, want, strict=True):
        assert np.abs(np.asarray(g)).max() > 0
        np.testing.assert_allclose(g, w, atol=resolution * 1e-2, rtol=1e-2)
    # The gradient of codebook[0] (the pruned weight) is zero: it is not a free parameter.
    assert float(got[1][0]) == 0.0


def _random_probs(rng, m, k, hard):
    keep = rng.random((m, k)) < 0.3 if hard else rng.uniform(0.05, 0.95, (m, k))
    act = rng.random(k) < 0.6 if hard else rng.uniform(0.05, 0.95, k)
    return keep.astype(np.float32), act.astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_expected_cycles_is_exact_for_hard_inputs(seed):
    rng = np.random.default_rng(100 + seed)
    m, k = int(rng.integers(1, 120)), int(rng.integers(1, 60))
    cfg = eie.EIEConfig(
        num_pes=int(rng.choice([1, 2, 4, 8])),
        fifo_depth=int(rng.choice([1, 2, 8])),
        index_bits=int(rng.choice([2, 3, 4])),
    )
    keep, act = _random_probs(rng, m, k, hard=True)
    keep = keep * (rng.random((m, k)) < rng.choice([0.1, 1.0]))  # sparse, padding-heavy
    codes = np.where(keep > 0, 1, 0)
    res = eie.simulate(eie.encode(codes, CODEBOOK, cfg), act, cfg)
    assert float(eie.expected_cycles(keep, act, cfg, temperature=0.0)) == int(res.total_cycles)


def test_expected_padding_is_the_exact_expectation():
    """Enumerate every pattern of a 10-row single-PE column with 2-bit indices."""
    rng = np.random.default_rng(7)
    q = rng.uniform(0.05, 0.6, 10)
    patterns = np.array(list(itertools.product([0, 1], repeat=10)))
    prob = np.prod(np.where(patterns == 1, q, 1 - q), axis=1)
    cfg = eie.EIEConfig(num_pes=1, index_bits=2)
    entries = [
        eie.encode(p[:, None], CODEBOOK, cfg).num_entries if p.any() else 0 for p in patterns
    ]
    expected = eie.expected_entries(jnp.asarray(q[:, None], jnp.float32), 1, 2)
    np.testing.assert_allclose(float(expected[0, 0]), np.dot(prob, entries), rtol=1e-5)


def test_expected_cycles_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    cfg = eie.EIEConfig(num_pes=4, fifo_depth=2, index_bits=2)
    keep, act = _random_probs(rng, 24, 10, hard=False)
    with jax.enable_x64(True):
        keep64, act64 = jnp.asarray(keep, jnp.float64), jnp.asarray(act, jnp.float64)
        f = lambda kp, ap: eie.expected_cycles(kp, ap, cfg, temperature=2.0)
        g_keep, g_act = jax.grad(f, argnums=(0, 1))(keep64, act64)
        eps = 1e-5
        for idx in [(0, 0), (5, 3), (23, 9), (11, 7)]:
            d = jnp.zeros_like(keep64).at[idx].set(eps)
            fd = (f(keep64 + d, act64) - f(keep64 - d, act64)) / (2 * eps)
            np.testing.assert_allclose(g_keep[idx], fd, rtol=1e-4, atol=1e-6)
        for j in [0, 4, 9]:
            d = jnp.zeros_like(act64).at[j].set(eps)
            fd = (f(keep64, act64 + d) - f(keep64, act64 - d)) / (2 * eps)
            np.testing.assert_allclose(g_act[j], fd, rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(g_keep)).max() > 0


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_pes", 0),
        ("num_pes", -3),
        ("fifo_depth", 0),
        ("index_bits", 0),
        ("index_bits", 9),
        ("num_pes", 2.0),
    ],
)
def test_bad_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        eie.EIEConfig(**{field: value})


def test_bad_encode_inputs_are_rejected():
    cfg = eie.EIEConfig(num_pes=2)
    with pytest.raises(ValueError, match=r"codes.*\[0, 16\)"):
        eie.encode(np.array([[0, 16]]), CODEBOOK, cfg)
    with pytest.raises(ValueError, match=r"codes.*\[0, 16\)"):
        eie.encode(np.array([[0, -1]]), CODEBOOK, cfg)
    with pytest.raises(ValueError, match=r"codebook\[0\]"):
        eie.encode(np.array([[0, 1]]), CODEBOOK + 1, cfg)
    with pytest.raises(ValueError, match="codebook"):
        eie.encode(np.array([[0, 1]]), CODEBOOK[:8], cfg)
    with pytest.raises(ValueError, match="codes"):
        eie.encode(np.array([0, 1]), CODEBOOK, cfg)


def test_bad_simulate_inputs_are_rejected():
    cfg = eie.EIEConfig(num_pes=2)
    layer = eie.encode(np.array([[0, 1, 2]]), CODEBOOK, cfg)
    with pytest.raises(ValueError, match="x"):
        eie.simulate(layer, np.zeros(4), cfg)
    with pytest.raises(ValueError, match="bias"):
        eie.simulate(layer, np.zeros(3), cfg, bias=np.zeros(2))
    with pytest.raises(ValueError, match="num_pes"):
        eie.simulate(layer, np.zeros(3), cfg.replace(num_pes=4))
    with pytest.raises(ValueError, match="x"):
        eie.simulate_batch(layer, np.zeros(3), cfg)


@pytest.mark.parametrize("where", ["x", "xs", "bias", "codebook"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_rejected_with_the_argument_named(where, bad):
    """Fixed point would turn NaN into 0 and inf into the saturated maximum, silently."""
    cfg = eie.EIEConfig(num_pes=2)
    codes = np.array([[1, 0, 2], [0, 3, 1]])
    codebook = np.linspace(0, 1, 16).astype(np.float32)
    x, bias = np.array([1.0, 0.5, 1.0]), np.zeros(2)
    if where == "codebook":
        codebook[5] = bad
        with pytest.raises(ValueError, match=r"codebook: .* at index \[5\]; allowed: finite"):
            eie.encode(codes, codebook, cfg)
        return
    layer = eie.encode(codes, codebook, cfg)
    if where == "x":
        x[1] = bad
        with pytest.raises(ValueError, match=r"^x: .* at index \[1\]"):
            eie.simulate(layer, x, cfg)
        with pytest.raises(ValueError, match=r"^x: .* at index \[1\]"):
            eie.simulate_cycles(layer, x, cfg)
    elif where == "xs":
        xs = np.stack([x, x])
        xs[1, 2] = bad
        with pytest.raises(ValueError, match=r"^xs: .* at index \[1, 2\]"):
            eie.simulate_batch(layer, xs, cfg)
    else:
        bias[0] = bad
        with pytest.raises(ValueError, match=r"^bias: .* at index \[0\]"):
            eie.simulate(layer, x, cfg, bias=bias)


@pytest.mark.parametrize("field", ["clock_mhz", "spmat_kb", "dram_gbps"])
def test_config_rejects_infinite_values(field):
    with pytest.raises(ValueError, match=f"^EIEConfig.{field}=inf: allowed: a number >"):
        eie.EIEConfig(**{field: float("inf")})
