"""Paired bootstrap intervals over the evaluation windows: against a loop over resamples,
sanity of the intervals (identical, shifted, coverage), per-window losses against
training.evaluate, run_job's stored windows and the report's "Δ [lo, hi]" and rankings."""

import re

import numpy as np
import pytest

from configs import char_lstm
from eie_jax.data import text
from eie_jax.studies.lm import bootstrap, methods, report
from eie_jax.studies.lm import training as lm
from tests import synthetic_text


def _oracle(a, b, samples, seed, level):
    """One resample at a time: n window indices with replacement, the same for a and b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(samples):
        idx = rng.integers(0, len(a), len(a))
        means.append(np.mean(b[idx] - a[idx]))
    lo, hi = np.quantile(np.array(means), [(1 - level) / 2, (1 + level) / 2])
    return float(np.mean(b - a)), float(lo), float(hi)


@pytest.mark.parametrize("seed", range(12))
def test_paired_interval_equals_a_loop_over_resamples(seed, monkeypatch):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 40))
    a = rng.normal(1.5, 0.2, n)
    b = a + rng.normal(0.01, 0.05, n)
    samples, level = int(rng.integers(1, 400)), float(rng.choice([0.5, 0.9, 0.95, 0.99]))
    expected = _oracle(a, b, samples, seed, level)
    assert bootstrap.paired_interval(a, b, samples, seed, level) == expected
    monkeypatch.setattr(bootstrap, "_CHUNK", 3 * n)  # resamples drawn 3 at a time: the same
    assert bootstrap.paired_interval(a, b, samples, seed, level) == expected


def _draws_oracle(a, b, samples, seed, level):
    """One resample at a time: n window indices shared by both sides, then for each side
    with d > 1 draws, d draw indices with replacement (one set for both when both have d);
    each side's mean over its chosen draws and windows."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(samples):
        idx = rng.integers(0, a.shape[1], a.shape[1])
        if len(a) == len(b) > 1:
            rows = rng.integers(0, len(a), len(a))
            chosen = (rows, rows)
        else:
            chosen = [[0] if len(x) == 1 else rng.integers(0, len(x), len(x)) for x in (a, b)]
        sides = [np.mean([x[r][idx] for r in rows]) for x, rows in zip((a, b), chosen, strict=True)]
        means.append(sides[1] - sides[0])
    lo, hi = np.quantile(np.array(means), [(1 - level) / 2, (1 + level) / 2])
    return float(b.mean() - a.mean()), float(lo), float(hi)


@pytest.mark.parametrize("seed", range(8))
def test_interval_over_calibration_draws_equals_a_loop_over_resamples(seed, monkeypatch):
    rng = np.random.default_rng(300 + seed)
    n, draws = int(rng.integers(1, 30)), int(rng.integers(2, 5))
    a = rng.normal(1.5, 0.2, n)
    b = a + rng.normal(0.01, 0.05, (draws, n)) + rng.normal(0, 0.02, (draws, 1))
    samples, level = int(rng.integers(1, 200)), float(rng.choice([0.5, 0.9, 0.95]))
    monkeypatch.setattr(bootstrap, "_CHUNK", 1)  # one resample at a time, as the loop
    other = b[:-1] + rng.normal(0, 0.01, (draws - 1, n))  # another number of draws
    for x, y in ((a, b), (b, a), (b, b[::-1]), (b, other)):
        got = bootstrap.paired_interval(x, y, samples, seed, level)
        expected = _draws_oracle(x, y, samples, seed, level)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_draws_widen_the_interval():
    """A method whose calibration draws disagree has a wider interval than one draw."""
    rng = np.random.default_rng(7)
    a = rng.normal(1.5, 0.2, 500)
    b = a + 0.01 + rng.normal(0, 0.01, (3, 500)) + np.array([[-0.02], [0.0], [0.02]])
    _, lo1, hi1 = bootstrap.paired_interval(a, b[1], samples=2000)
    delta, lo3, hi3 = bootstrap.paired_interval(a, b, samples=2000)
    assert abs(delta - 0.01) < 0.002
    assert hi3 - lo3 > 3 * (hi1 - lo1)


def test_intervals_identical_shifted_and_refused():
    rng = np.random.default_rng(0)
    a = rng.normal(1.4, 0.3, 64)
    assert bootstrap.paired_interval(a, a) == (0.0, 0.0, 0.0)
    up = bootstrap.paired_interval(a, a + 0.02 + rng.normal(0, 0.01, 64))
    down = bootstrap.paired_interval(a, a - 0.02 + rng.normal(0, 0.01, 64))
    assert 0 < up[1] < up[0] < up[2] and down[1] < down[0] < down[2] < 0
    # Unpaired noise far larger than the shift: the interval holds 0.
    assert bootstrap.paired_interval(a, rng.normal(1.41, 0.3, 64))[1] < 0
    with pytest.raises(ValueError, match="want equal"):
        bootstrap.paired_interval(a, a[:-1])
    with pytest.raises(ValueError, match="level"):
        bootstrap.paired_interval(a, a, level=1.0)


def test_the_interval_covers_the_true_difference_about_as_often_as_its_level():
    rng = np.random.default_rng(1)
    covered = []
    for trial in range(200):
        a = rng.normal(1.0, 0.5, 100)
        b = a + rng.normal(0.3, 1.0, 100)
        _, lo, hi = bootstrap.paired_interval(a, b, samples=1000, seed=trial)
        covered.append(lo <= 0.3 <= hi)
    assert 0.88 <= np.mean(covered) <= 0.99


def tiny_study(tmp_path):
    """(config, corpus, dense model) of a tiny LSTM on a synthetic text: seconds."""
    config = char_lstm.get_config("smoke")
    config.model_kwargs.update(embed_dim=8, hidden=16)
    config.data.data_dir = synthetic_text.write_corpus(str(tmp_path / "texts"))
    config.data.validation_works, config.data.test_works = ("beta",), ("gamma",)
    corpus = text.load(config.data.data_dir, ["beta"], ["gamma"])
    return config, corpus, lm.build_model(config, corpus.vocab_size)


def test_window_losses_average_to_evaluate_and_run_job_stores_them(tmp_path):
    config, corpus, model = tiny_study(tmp_path)
    d = config.data
    windows = lm.window_losses(model, corpus.test, d.context, d.eval_windows, 3)
    assert windows.shape == (d.eval_windows,) and windows.dtype == np.float64
    nats = lm.evaluate(model, corpus.test, d.context, d.eval_windows)
    assert abs(windows.mean() - nats) < 1e-6
    inputs, targets = text.eval_windows(corpus.test, d.context, d.eval_windows)
    # window 5 alone, its cross entropy written out: log-sum-exp minus the target's logit
    logits = np.asarray(model(inputs[5:6]), np.float64)[0]
    picked = logits[np.arange(d.context), targets[5]]
    shift = logits.max(axis=-1)
    lse = shift + np.log(np.exp(logits - shift[:, None]).sum(axis=-1))
    assert abs(windows[5] - np.mean(lse - picked)) < 1e-5
    job = methods.Job("rtn_sym_channel_b4", "rtn_sym_channel", (4,))
    config.bootstrap.samples = 0  # intervals off: no windows stored
    (row,) = methods.run_job(job, lm.copy(model), corpus, config, None)
    assert "test_windows" not in row and not bootstrap.enabled(config)
    config.bootstrap.samples = 100
    (stored,) = methods.run_job(job, lm.copy(model), corpus, config, None)
    # With windows the test loss is their mean (one pass): evaluate's number to rounding
    assert stored == dict(row, test_windows=stored["test_windows"], test_nats=stored["test_nats"])
    assert len(stored["test_windows"]) == d.eval_windows
    assert stored["test_nats"] == np.mean(stored["test_windows"])
    assert abs(stored["test_nats"] - row["test_nats"]) < 1e-6


def _results(windows):
    rng = np.random.default_rng(2)
    dense = rng.normal(1.5, 0.2, 32)
    rows = []
    for name, bits, shift in (("a", 4, 0.05), ("b", 4, 0.0501), ("c", 4, 0.2), ("d", 3, 0.3)):
        w = dense + shift + rng.normal(0, 0.01, 32)
        rows.append(
            dict(name=name, bits=bits, sparsity=0.0, finetuned=False, test_nats=w.mean(),
                 delta_nats=w.mean() - dense.mean(), bits_per_weight=bits + 0.1,
                 eie_bits_per_weight=None, model_kb=10.0, runs_on_eie=False)
        )  # fmt: skip
        if windows:
            rows[-1]["test_windows"] = list(w)
    meta = dict(steps=5, seconds=60.0, validation_nats=1.6, test_nats=dense.mean(), model_kb=40)
    if windows:
        meta["test_windows"] = list(dense)
    return dict(model="char_lstm", dense=meta, rows=rows)


def test_report_intervals_and_rankings():
    plain, with_windows = _results(False), _results(True)
    text_plain = report.to_markdown(plain)
    assert "interval" not in text_plain and "Ranked" not in text_plain
    assert f"| a | 4 | 0.00 | no | {plain['rows'][0]['test_nats']:.4f} | +0.05" in text_plain
    table = report.to_markdown(with_windows)
    assert "| Δ vs dense [95% interval] |" in table
    dense = with_windows["dense"]["test_windows"]
    for row in with_windows["rows"]:
        interval = bootstrap.paired_interval(dense, row["test_windows"])
        assert interval[1] > 0
        assert f"| {report.interval_text(*interval)} |" in table
    # 4 bits: a and b (shifts 0.05, 0.0501) tie, c is worse; 3 bits: one method, no pair.
    ranked = table.split("excludes 0.\n\n")[1].splitlines()
    assert len(ranked) == 2
    assert re.fullmatch(
        r"- 4 bits: ([ab]) and ([ab]) not ranked: \2 - \1 = .* includes 0", ranked[0]
    )
    assert re.fullmatch(r"- 4 bits: ([ab]) better than c: c - \1 = \+0\.1.*", ranked[1])
    assert report.ranking("x", "y", (-0.2, -0.3, -0.1)).startswith("y better than x: y - x")
    assert report.ranking("x", "y", (0.2, 0.1, 0.3)).startswith("x better than y")
    assert report.ranking("x", "y", (0.1, -0.1, 0.3)).endswith("includes 0")
    assert report.interval_text(0.01234, -0.5, 1.0) == "+0.0123 [-0.5000, +1.0000]"
