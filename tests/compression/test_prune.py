"""Tests for eie_jax.compression.prune: mask rules, schedules and prune_model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eie_jax.compression import prune
from eie_jax.compression.layers import MaskedLinear
from eie_jax.utils.cli import UserError


def _weights(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _per_pe_block_counts(mask_hw, num_pes, block_cols):
    m, k = mask_hw.shape
    pe = np.arange(m) % num_pes
    block = np.arange(k) // block_cols
    counts = np.zeros((num_pes, block.max() + 1), int)
    np.add.at(counts, (pe[:, None], block[None, :]), mask_hw.astype(int))
    return counts


# -- rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quality, mask, expected",
    [
        # mean 0, std 2 over all five weights.
        (1.0, None, [1, 0, 0, 0, 1]),
        (0.4, None, [1, 1, 0, 1, 1]),
        (0.0, None, [1, 1, 0, 1, 1]),  # |0| > 0 is false: zeros are always pruned
        # survivors [-1, 0, 1]: std sqrt(2/3) ~ 0.816, so quality 1 keeps -1 and 1.
        (1.0, [0, 1, 1, 1, 0], [0, 1, 0, 1, 0]),
        (1.3, [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]),
    ],
)
@pytest.mark.parametrize("jit", [False, True])
def test_std_threshold_on_known_array(quality, mask, expected, jit):
    w = jnp.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    mask = None if mask is None else jnp.array(mask, jnp.float32)
    fn = jax.jit(prune.std_threshold_mask) if jit else prune.std_threshold_mask
    np.testing.assert_array_equal(fn(w, quality, mask), expected)


@pytest.mark.parametrize("shape", [(50, 30), (3, 3, 4, 8), (7,)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.91, 1.0])
def test_sparsity_mask_keeps_exact_fraction_of_largest(shape, sparsity):
    w = _weights(shape, seed=len(shape))
    mask = np.asarray(jax.jit(prune.sparsity_mask)(w, sparsity))
    assert mask.shape == shape
    assert mask.sum() == round((1 - sparsity) * w.size)
    if 0 < mask.sum() < w.size:
        assert np.abs(w)[mask == 1].min() >= np.abs(w)[mask == 0].max()


def test_sparsity_mask_never_revives_pruned_weights():
    w = _weights((40, 20), seed=1)
    prior = np.asarray(prune.sparsity_mask(w, 0.7))
    # Asking for less sparsity than the prior mask has keeps exactly the prior mask.
    np.testing.assert_array_equal(prune.sparsity_mask(w * 10, 0.3, prior), prior)
    # Flip magnitudes so that pruned weights would win: they still stay out.
    flipped = np.where(prior > 0, 0.01, 100.0).astype(np.float32)
    again = np.asarray(prune.sparsity_mask(flipped, 0.8, prior))
    assert np.all(again <= prior) and again.sum() == round(0.2 * w.size)


@pytest.mark.parametrize(
    "m, k, num_pes, block_cols",
    [
        (64, 48, 8, None),
        (64, 48, 8, 16),
        (300, 784, 64, None),  # fc1 of LeNet-300-100 on EIE: 300 % 64 != 0
        (100, 30, 16, 7),  # ragged last column block and ragged rows
        (10, 12, 4, 5),
        (10, 100, 64, None),  # fc3 of LeNet-300-100 on 64 PEs: only 10 PEs hold rows
    ],
)
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_balanced_mask_gives_every_pe_the_same_work(m, k, num_pes, block_cols, sparsity):
    w = _weights((m, k), seed=m + k)
    mask = np.asarray(
        jax.jit(prune.balanced_mask, static_argnums=(2, 3))(w, sparsity, num_pes, block_cols)
    )
    bc = k if block_cols is None else block_cols
    counts = _per_pe_block_counts(mask, num_pes, bc)
    widths = np.minimum(bc, k - bc * np.arange(counts.shape[1]))
    rows = np.bincount(np.arange(m) % num_pes, minlength=num_pes)
    capacity = rows[:, None] * widths[None, :]
    # One common count per block, within rounding of (1 - s) * M * width / (PEs with rows),
    common = counts.max(axis=0)
    pes = min(num_pes, m)
    assert np.all(np.abs(common - (1 - sparsity) * m * widths / pes) <= 0.5 + 1e-4)
    # so the layer keeps (1 - s) of its weights, up to that rounding ...
    assert abs(mask.sum() - (1 - sparsity) * m * k) <= 0.5 * pes * len(widths) + 1e-4
    # ... which every PE reaches unless it has fewer weights in the block than that.
    np.testing.assert_array_equal(counts, np.minimum(common[None, :], capacity))
    # Within each PE's block the kept weights are the largest ones.
    pe = np.arange(m) % num_pes
    for p in range(num_pes):
        for b in range(counts.shape[1]):
            sub_w = np.abs(w[pe == p][:, b * bc : (b + 1) * bc])
            sub_m = mask[pe == p][:, b * bc : (b + 1) * bc]
            if 0 < sub_m.sum() < sub_m.size:
                assert sub_w[sub_m == 1].min() >= sub_w[sub_m == 0].max()
    if m % num_pes == 0:
        assert np.all(counts == counts[:1])


def test_balanced_mask_evens_out_a_skewed_matrix():
    # Rows of PE 0 are 10x larger: magnitude pruning starves the others, balancing does not.
    w = _weights((32, 40), seed=3)
    w[::4] *= 10.0
    magnitude = np.asarray(prune.sparsity_mask(w, 0.8))
    balanced = np.asarray(prune.balanced_mask(w, 0.8, 4))
    assert magnitude.sum() == balanced.sum() == 256
    mag_counts = _per_pe_block_counts(magnitude, 4, 40)[:, 0]
    assert mag_counts.max() > 2 * mag_counts.min()
    np.testing.assert_array_equal(_per_pe_block_counts(balanced, 4, 40)[:, 0], [64] * 4)


def test_balanced_mask_respects_prior_mask():
    w = _weights((16, 16), seed=4)
    prior = np.asarray(prune.sparsity_mask(w, 0.6))
    mask = np.asarray(prune.balanced_mask(w, 0.8, 4, mask=prior))
    assert np.all(mask <= prior)


@pytest.mark.parametrize("k", [16, 18, 19])
@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8), (3, 3)])
def test_n_m_mask_keeps_n_of_every_m_along_inputs(k, n, m):
    w = _weights((6, k), seed=k)
    mask = np.asarray(jax.jit(prune.n_m_mask, static_argnums=(1, 2))(w, n, m))
    full = k // m * m
    groups = mask[:, :full].reshape(6, -1, m)
    assert np.all(groups.sum(axis=-1) == n)
    if k % m:
        assert np.all(mask[:, full:].sum(axis=1) == min(n, k % m))
    # The kept ones are the largest of their group.
    mags = np.abs(w[:, :full]).reshape(6, -1, m)
    kept_min = np.where(groups == 1, mags, np.inf).min(axis=-1)
    dropped_max = np.where(groups == 0, mags, -np.inf).max(axis=-1)
    assert np.all(kept_min >= dropped_max)


def test_n_m_groups_run_along_the_input_axis_of_w():
    # Row 0 has its four large weights in one group of inputs; a column-wise (output-axis)
    # grouping would keep a different pattern.
    w = np.array([[9, 8, 7, 6, 1, 2, 3, 4], [1, 1, 1, 1, 1, 1, 1, 1]], np.float32) * [[1], [0.1]]
    mask = np.asarray(prune.n_m_mask(w, 2, 4))
    np.testing.assert_array_equal(mask[0], [1, 1, 0, 0, 0, 0, 1, 1])
    assert mask[1].sum() == 4


def test_n_m_mask_never_revives():
    w = _weights((4, 8), seed=6)
    prior = np.ones((4, 8), np.float32)
    prior[:, :3] = 0
    mask = np.asarray(prune.n_m_mask(w, 2, 4, prior))
    assert np.all(mask[:, :3] == 0)
    np.testing.assert_array_equal(mask[:, :4].sum(axis=1), [1] * 4)


# -- schedules -----------------------------------------------------------------------


def test_gradual_schedule_is_cubic_with_right_endpoints_and_monotone():
    s_i, s_f, t0, t1, dt = 0.1, 0.9, 100, 1100, 100
    sched = prune.gradual(s_i, s_f, t0, t1, dt)
    steps = jnp.arange(0, 1500)
    s = np.asarray(jax.jit(jax.vmap(sched.sparsity))(steps))
    prune_now = np.asarray(jax.jit(jax.vmap(sched.is_pruning_step))(steps))
    assert np.all(s[:t0] == 0.0)
    np.testing.assert_allclose(s[t0], s_i, rtol=1e-6)
    np.testing.assert_allclose(s[t1:], s_f, rtol=1e-6)
    assert np.all(np.diff(s[t0:]) >= 0)
    np.testing.assert_array_equal(np.flatnonzero(prune_now), np.arange(t0, t1 + 1, dt))
    # Between pruning steps the target holds; at them it follows Zhu & Gupta Eq. 1.
    for t in (300, 650):
        last = t0 + (t - t0) // dt * dt
        assert s[t] == s[last]
        np.testing.assert_allclose(
            s[last], s_f + (s_i - s_f) * (1 - (last - t0) / (t1 - t0)) ** 3, rtol=1e-6
        )
    # The cubic prunes fast early and slowly late.
    assert s[t0 + dt] - s[t0] > s[t1] - s[t1 - dt]


def test_gradual_includes_end_step_off_the_grid():
    sched = prune.gradual(0.0, 0.8, 0, 250, 100)
    assert [bool(sched.is_pruning_step(t)) for t in (0, 100, 200, 250, 300)] == [
        True,
        True,
        True,
        True,
        False,
    ]
    np.testing.assert_allclose(sched.sparsity(250), 0.8, rtol=1e-6)
    np.testing.assert_allclose(
        sched.sparsity(249), prune.cubic_sparsity(200, 0.0, 0.8, 0, 250), rtol=1e-6
    )


def _drive(schedule, epochs=6, steps_per_epoch=10, **settings):
    """Runs a registered schedule driver on a fake model; returns its (scale, step) calls."""
    calls, trained = [], []
    step = [0]

    def prune_to(scale):
        calls.append((round(scale, 6), step[0]))
        return {}

    def train(n, stage, on_step=None, penalty=0.0):
        trained.append((n, stage))
        for _ in range(n * steps_per_epoch):
            if on_step is not None:
                on_step(step[0])
            step[0] += 1

    ctx = prune.Context(prune=prune_to, train=train, epochs=epochs, steps_per_epoch=steps_per_epoch)
    entry = prune.get("schedule", schedule)
    entry.fn(ctx, **{**prune.entry_settings(entry, prune.defaults()), **settings})
    return calls, trained


def test_schedule_drivers():
    calls, trained = _drive("one_shot")
    assert calls == [(1.0, 0)] and trained == [(6, "prune/round 1")]
    calls, trained = _drive("iterative", rounds=3)
    assert [c[0] for c in calls] == pytest.approx([1 / 3, 2 / 3, 1.0], abs=1e-6)
    assert [n for n, _ in trained] == [2, 2, 2]
    calls, trained = _drive("gradual", end_fraction=0.5, prunes_per_epoch=2)
    steps = [t for _, t in calls]
    # 60 steps; the cubic ramp ends at step 30; masks every 5 steps until then.
    assert steps == [0, 5, 10, 15, 20, 25, 30] and calls[-1][0] == 1.0
    assert trained == [(6, "prune/gradual")]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: prune.gradual(0.0, 1.5, 0, 10, 1), "final_sparsity"),
        (lambda: prune.gradual(0.0, 0.5, 10, 10, 1), "end_step"),
        (lambda: prune.gradual(0.0, 0.5, 0, 10, 0), "frequency"),
        (lambda: prune.sparsity_mask(np.ones(4), 1.2), "sparsity"),
        (lambda: prune.std_threshold_mask(np.ones(4), -1.0), "quality"),
        (lambda: prune.balanced_mask(np.ones((4, 4)), 0.5, 0), "num_pes"),
        (lambda: prune.balanced_mask(np.ones(4), 0.5, 2), "w_hw"),
        (lambda: prune.n_m_mask(np.ones((4, 4)), 5, 4), "n"),
    ],
)
def test_invalid_arguments_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- prune_model ---------------------------------------------------------------------


class _Net(nnx.Module):
    def __init__(self, *, rngs):
        self.fc1 = MaskedLinear(40, 32, rngs=rngs)
        self.fc2 = MaskedLinear(32, 16, rngs=rngs)


@pytest.fixture(scope="module")
def net_state():
    return nnx.split(_Net(rngs=nnx.Rngs(0)))


def _net(net_state):
    # copy=True: every test gets its own Variables (merge would otherwise share them).
    return nnx.merge(*net_state, copy=True)


def test_prune_model_per_layer_settings_and_only_removes(net_state):
    net = _net(net_state)
    config = dict(structure="unstructured", sparsity=0.9, layers=dict(fc2=dict(sparsity=0.5)))
    kept = prune.prune_model(net, config)
    assert kept == pytest.approx(dict(fc1=0.1, fc2=0.5), abs=1e-3)
    assert np.all(np.asarray(net.fc1.kernel[...])[np.asarray(net.fc1.mask[...]) == 0] == 0.0)
    before = {name: np.asarray(getattr(net, name).mask[...]) for name in ("fc1", "fc2")}
    # A std round afterwards can only remove more.
    kept = prune.prune_model(net, dict(structure="std", quality=0.5))
    for name in ("fc1", "fc2"):
        after = np.asarray(getattr(net, name).mask[...])
        assert np.all(after <= before[name]) and kept[name] <= before[name].mean()
    # scale: half the way to the target.
    fresh = _net(net_state)
    assert prune.prune_model(fresh, dict(sparsity=0.8), scale=0.5)["fc1"] == (
        pytest.approx(0.6, abs=1e-3)
    )


def test_prune_model_hardware_rules_act_on_w_equals_kernel_transposed(net_state):
    net = _net(net_state)
    prune.prune_model(net, dict(structure="balanced", sparsity=0.75, num_pes=8, block_cols=10))
    counts = _per_pe_block_counts(np.asarray(net.fc1.hardware_mask()), 8, 10)
    assert np.all(counts == 10)  # 0.25 * 32 rows * 10 cols / 8 PEs
    net = _net(net_state)
    prune.prune_model(net, dict(structure="n_m", layers=dict(fc2=dict(structure="none"))))
    hw = np.asarray(net.fc1.hardware_mask())  # (32 outputs, 40 inputs)
    assert np.all(hw.reshape(32, 10, 4).sum(-1) == 2)
    assert np.all(np.asarray(net.fc2.mask[...]) == 1)


def test_random_score_follows_the_seed(net_state):
    masks = {}
    for seed in (0, 0, 1):
        net = _net(net_state)
        prune.prune_model(net, dict(score="random", sparsity=0.5), seed=seed)
        masks.setdefault(seed, []).append(np.asarray(net.fc1.mask[...]))
    np.testing.assert_array_equal(masks[0][0], masks[0][1])
    assert not np.array_equal(masks[0][0], masks[1][0])
    assert masks[1][0].mean() == pytest.approx(0.5, abs=1e-3)
    # Not the magnitude ranking: some kept weights are smaller than some dropped ones.
    w = np.abs(np.asarray(_net(net_state).fc1.kernel[...]))
    assert w[masks[0][0] > 0].min() < w[masks[0][0] == 0].max()


def test_global_distribution_keeps_ratios_at_the_target_density(net_state):
    net = _net(net_state)
    config = prune.validate(
        dict(distribution="global", target_density=0.2, sparsity=0.9,
             layers=dict(fc2=dict(sparsity=0.8))),
        ["fc1", "fc2"],
    )  # fmt: skip
    targets = prune.layer_targets(config, net)
    keep = {k: 1 - v for k, v in targets.items()}
    overall = (keep["fc1"] * 40 * 32 + keep["fc2"] * 32 * 16) / (40 * 32 + 32 * 16)
    assert overall == pytest.approx(0.2, rel=1e-6)
    assert keep["fc2"] / keep["fc1"] == pytest.approx(2.0, rel=1e-6)


def test_a_new_structure_is_one_registered_function(net_state):
    """What README's "Adding a pruning rule" says: one decorated function, and its setting
    is a config field with a default."""

    @prune.register(
        "structure", "test_keep_first_rows", layout="hardware", target=None,
        settings={"test_rows": prune.registry.positive_int(3, per_layer=True)},
    )  # fmt: skip
    def keep_first_rows(w_hw, target, mask, *, test_rows):
        return jnp.asarray(mask) * (jnp.arange(w_hw.shape[0]) < test_rows)[:, None]

    try:
        assert prune.defaults()["test_rows"] == 3
        net = _net(net_state)
        prune.prune_model(
            net, dict(structure="test_keep_first_rows", layers=dict(fc2=dict(test_rows=5)))
        )
        assert np.asarray(net.fc1.hardware_mask()).sum(1).nonzero()[0].tolist() == [0, 1, 2]
        assert np.asarray(net.fc2.hardware_mask()).sum(1).nonzero()[0].tolist() == [0, 1, 2, 3, 4]
    finally:
        del prune.REGISTRY["structure"]["test_keep_first_rows"]


@pytest.mark.parametrize(
    "config, match",
    [
        (dict(structure="magnitude", sparsity=0.5), r"prune.structure='magnitude': allowed"),
        (dict(sparsity=1.5), r"prune.sparsity=1.5: allowed: a number in \[0, 1\]"),
        (dict(layers=dict(fc1=dict(sparsity=-0.1))), r"prune.layers.fc1.sparsity=-0.1"),
        (dict(layers=dict(fc1=dict(sparsity=float("nan")))), r"prune.layers.fc1.sparsity=nan"),
        (dict(structure="std", quality=-1.0), r"prune.quality=-1.0"),
        (dict(structure="balanced", num_pes=0), r"prune.num_pes=0"),
        (dict(layers=dict(fc9=dict(quality=1.0))), "prune.layers.fc9: no such layer"),
        (dict(qualty=1.0), "prune.qualty: no such field; did you mean .quality.?"),
        (dict(layers=dict(fc1=dict(rounds=2))), "prune.layers.fc1.rounds: no such field"),
    ],
)
def test_prune_model_validates_config(net_state, config, match):
    with pytest.raises(UserError, match=match):
        prune.prune_model(_net(net_state), config)


def test_prune_model_refuses_shared_layers(net_state):
    net = _net(net_state)
    net.fc1.share(np.array([0.0, 1.0], np.float32), np.ones(net.fc1.kernel_shape, int))
    with pytest.raises(ValueError, match="shared"):
        prune.prune_model(net, dict(structure="std", quality=1.0))
