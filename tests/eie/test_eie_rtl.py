"""The rtl timing (the reference simulator's rules) against its NumPy oracle, exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eie_jax import eie
from eie_jax.eie import fixed_point
from tests.oracle import eie_oracle, eie_rtl_oracle

NUM_CASES = 240
PAD_PES, PAD_COLS, MAX_DEPTH = 256, 48, 64
CODEBOOK = np.concatenate([[0.0], np.linspace(-1, 1, 15) + 0.01]).astype(np.float32)


def random_case(seed, max_rows=40, max_cols=PAD_COLS):
    """A random layer, input, bias and design point over the issue's ranges."""
    rng = np.random.default_rng(1000 + seed)
    num_pes = int(np.exp(rng.uniform(0, np.log(PAD_PES + 1))))
    if seed % 10 == 0:  # many PEs, with enough rows to fill them
        num_pes, max_rows = int(rng.choice([128, 256])), 600
    m = int(rng.integers(1, max_rows + 1))
    k = int(rng.integers(1, max_cols + 1))
    density = rng.choice([0.0, 0.03, 0.2, 0.6, 1.0, rng.uniform()])
    cfg = eie.EIEConfig(
        num_pes=num_pes,
        fifo_depth=int(rng.choice([1, 2, 3, 4, 8, 16, 64, rng.integers(1, 65)])),
        index_bits=int(rng.integers(2, 9)),
        timing="rtl",
    )
    codes = np.where(rng.random((m, k)) < density, rng.integers(1, 16, (m, k)), 0)
    x = rng.standard_normal(k) * (rng.random(k) < rng.choice([0.0, 0.3, 0.8, 1.0]))
    bias = None
    if seed % 2:  # half with a bias, of any density (zeros make gaps, so padding)
        bias = rng.standard_normal(m) * (rng.random(m) < rng.choice([0.0, 0.1, 0.5, 1.0]))
    return codes, x.astype(np.float32), bias, cfg


def oracle(codes, x, bias, cfg):
    return eie_rtl_oracle.simulate(
        codes,
        x,
        num_pes=cfg.num_pes,
        fifo_depth=cfg.fifo_depth,
        index_bits=cfg.index_bits,
        act_frac_bits=cfg.act_frac_bits,
        bias=bias,
    )


def oracle_pe_cycles(codes, x, bias, cfg):
    """The oracle's total, and pe_cycles as timing.py defines them from its rules."""
    total, last_write, t_empty = oracle(codes, x, bias, cfg)
    return total, np.maximum(np.maximum(last_write + 1, t_empty), 9)


def test_worked_cases():
    """The reference's worked cases: 2 PEs, 2 rows, 8 columns, all weights and activations
    nonzero, no bias."""
    codes, x = np.ones((2, 8), int), np.ones(8, np.float32)
    for depth, want in [(1, 23), (2, 16), (3, 16)]:
        cfg = eie.EIEConfig(num_pes=2, fifo_depth=depth, timing="rtl")
        layer = eie.encode(codes, CODEBOOK, cfg)
        assert int(eie.simulate(layer, x, cfg).total_cycles) == want
        assert oracle(codes, x, None, cfg)[0] == want
        paper = cfg.replace(timing="paper")
        assert int(eie.simulate(layer, x, paper).total_cycles) == 8


def _padded_inputs(case, compress):
    """rtl_cycles_from_counts' inputs, padded to one shape as a batched sweep pads them.

    compress: pass only the broadcast columns with their original indices (as the sweep
    does), else the whole layer with an activity mask.
    """
    codes, x, bias, cfg = case
    m, k = codes.shape
    counts = eie.column_counts(codes, cfg.num_pes, cfg.index_bits)
    active = np.asarray(fixed_point.quantize(x, cfg.act_frac_bits)) != 0
    columns = np.arange(k)
    if compress:
        counts, columns, active = counts[:, active], columns[active], active[active]
    padded = np.zeros((PAD_PES, PAD_COLS), np.int32)
    padded[: cfg.num_pes, : counts.shape[1]] = counts
    bias_counts = np.zeros(PAD_PES, np.int32)
    bias_counts[: cfg.num_pes] = eie.bias_entries(bias, m, cfg)
    return (
        padded,
        np.pad(active, (0, PAD_COLS - len(active))),
        cfg.fifo_depth,
        np.pad(columns, (0, PAD_COLS - len(columns))),
        bias_counts,
        eie.bias_column(k, cfg.num_pes),
        cfg.num_pes,
    )


@pytest.mark.slow
def test_batched_counts_path_matches_oracle_on_many_cases():
    """>= 200 random cases in one vmapped call (PE and column padding as in a sweep)."""
    cases = [random_case(seed) for seed in range(NUM_CASES)]
    inputs = [_padded_inputs(case, compress=seed % 2 == 0) for seed, case in enumerate(cases)]
    stacked = [jnp.asarray(np.stack(column)) for column in zip(*inputs, strict=True)]
    history = eie.history_size(MAX_DEPTH)
    run = jax.vmap(lambda *a: eie.rtl_cycles_from_counts(*a, history=history))
    pe_cycles, pe_busy = jax.device_get(run(*stacked))
    assert {case[3].num_pes for case in cases} >= {1, 256}
    for b, (codes, x, bias, cfg) in enumerate(cases):
        n = cfg.num_pes
        total, want = oracle_pe_cycles(codes, x, bias, cfg)
        assert int(pe_cycles[b].max()) == total, (b, cfg)
        np.testing.assert_array_equal(pe_cycles[b, :n], want)
        paper_busy = eie_oracle.simulate(
            codes,
            CODEBOOK,
            x,
            num_pes=n,
            fifo_depth=cfg.fifo_depth,
            index_bits=cfg.index_bits,
            act_frac_bits=cfg.act_frac_bits,
            weight_frac_bits=cfg.weight_frac_bits,
        )[2]
        np.testing.assert_array_equal(pe_busy[b, :n], paper_busy)


@pytest.mark.parametrize("seed", [1, 4, 10, 17, 22, 29])
def test_simulate_rtl_matches_oracle_and_paper_outputs(seed):
    codes, x, bias, cfg = random_case(seed, max_rows=24, max_cols=16)
    layer = eie.encode(codes, CODEBOOK, cfg)
    res = eie.simulate(layer, x, cfg, relu=True, bias=bias)
    total, want = oracle_pe_cycles(codes, x, bias, cfg)
    assert int(res.total_cycles) == total
    np.testing.assert_array_equal(res.pe_cycles, want)
    assert float(res.time_us) == pytest.approx(total / cfg.clock_mhz)
    pe_cycles, pe_busy = eie.simulate_cycles(layer, x, cfg, bias=bias)
    np.testing.assert_array_equal(pe_cycles, want)
    # Only the cycles differ between the timings.
    paper = eie.simulate(layer, x, cfg.replace(timing="paper"), relu=True, bias=bias)
    np.testing.assert_array_equal(res.outputs, paper.outputs)
    np.testing.assert_array_equal(res.pe_busy, paper.pe_busy)


def test_simulate_batch_rtl_matches_single_runs():
    rng = np.random.default_rng(3)
    cfg = eie.EIEConfig(num_pes=8, fifo_depth=2, timing="rtl")
    codes = np.where(rng.random((60, 50)) < 0.2, rng.integers(1, 16, (60, 50)), 0)
    layer = eie.encode(codes, CODEBOOK, cfg)
    xs = (rng.standard_normal((5, 50)) * (rng.random((5, 50)) < 0.5)).astype(np.float32)
    bias = rng.standard_normal(60) * (rng.random(60) < 0.3)
    batch = eie.simulate_batch(layer, xs, cfg, bias=bias)
    for b in range(5):
        total, want = oracle_pe_cycles(codes, xs[b], bias, cfg)
        np.testing.assert_array_equal(batch.pe_cycles[b], want)
        assert int(batch.total_cycles[b]) == total


def test_no_broadcast_and_no_bias_costs_the_minimum():
    cfg = eie.EIEConfig(num_pes=4, timing="rtl")
    layer = eie.encode(np.ones((8, 40), int), CODEBOOK, cfg)
    # Only the bias item at Kp = 40 is sent, at 1 + 40 // 4 = 11, and writes nothing.
    assert int(eie.simulate(layer, np.zeros(40), cfg).total_cycles) == 11
    small = eie.encode(np.ones((8, 4), int), CODEBOOK, cfg)
    assert int(eie.simulate(small, np.zeros(4), cfg).total_cycles) == 9


def test_column_entries_matches_the_encoder():
    rng = np.random.default_rng(11)
    for num_pes, index_bits in [(1, 2), (3, 2), (8, 4), (64, 3)]:
        nonzero = rng.random(300) < rng.choice([0.02, 0.3])
        want = eie.column_counts(nonzero[:, None].astype(int), num_pes, index_bits)[:, 0]
        got = eie.column_entries(jnp.asarray(nonzero), num_pes, index_bits)
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the smooth surrogate


@pytest.mark.parametrize("seed", range(10))
def test_expected_rtl_cycles_is_exact_for_hard_inputs(seed):
    rng = np.random.default_rng(200 + seed)
    m, k = int(rng.integers(1, 80)), int(rng.integers(1, 40))
    cfg = eie.EIEConfig(
        num_pes=int(rng.choice([1, 2, 3, 8, 16])),
        fifo_depth=int(rng.choice([1, 2, 4, 8])),
        index_bits=int(rng.choice([2, 3, 4])),
        timing="rtl",
    )
    keep = (rng.random((m, k)) < rng.choice([0.05, 0.3, 0.9])).astype(np.float32)
    act = (rng.random(k) < 0.6).astype(np.float32)
    bias = (rng.random(m) < 0.4).astype(np.float32) if seed % 2 else None
    codes = keep.astype(int)
    res = eie.simulate(eie.encode(codes, CODEBOOK, cfg), act, cfg, bias=bias)
    got = eie.expected_cycles(keep, act, cfg, temperature=0.0, bias_prob=bias)
    assert float(got) == int(res.total_cycles)


def test_expected_rtl_cycles_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    cfg = eie.EIEConfig(num_pes=4, fifo_depth=2, index_bits=2, timing="rtl")
    keep = rng.uniform(0.05, 0.95, (24, 10))
    act = rng.uniform(0.05, 0.95, 10)
    bias = rng.uniform(0.05, 0.95, 24)
    with jax.enable_x64(True):
        keep64, act64, bias64 = (jnp.asarray(a, jnp.float64) for a in (keep, act, bias))
        f = lambda kp, ap, bp: eie.expected_cycles(kp, ap, cfg, temperature=2.0, bias_prob=bp)
        g_keep, g_act, g_bias = jax.grad(f, argnums=(0, 1, 2))(keep64, act64, bias64)
        eps = 1e-5
        for arg, grad, idxs in [
            (0, g_keep, [(0, 0), (5, 3), (23, 9), (11, 7)]),
            (1, g_act, [0, 4, 9]),
            (2, g_bias, [0, 13, 23]),
        ]:
            base = [keep64, act64, bias64]
            for idx in idxs:
                plus, minus = list(base), list(base)
                plus[arg] = base[arg].at[idx].add(eps)
                minus[arg] = base[arg].at[idx].add(-eps)
                fd = (f(*plus) - f(*minus)) / (2 * eps)
                np.testing.assert_allclose(grad[idx], fd, rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(g_keep)).max() > 0 and np.abs(np.asarray(g_act)).max() > 0


def test_bad_timing_is_rejected():
    with pytest.raises(ValueError, match="timing"):
        eie.EIEConfig(timing="cycle")
