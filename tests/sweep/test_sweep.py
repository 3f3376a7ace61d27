"""Tests of eie_jax/sweep/: expander, resumable store, batched EIE points, sharding, plots."""

import dataclasses
import glob
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from eie_jax import eie
from eie_jax import sweep as sw
from eie_jax.compression.sparse_format import entry_counts_by_column
from eie_jax.eie import benchmarks, fixed_point
from eie_jax.utils.cli import UserError
from tests.helpers import (
    FIG8_SMOKE,
    ROOT,
    assert_one_line_error,
    base_config,
    png_size,
    run_entry_point,
    small_eie_axes,
    small_eie_config,
    train_axes,
    train_config,
)
from tests.oracle import eie_oracle

SWEEP_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "sweeps", "*.py")))


# ----------------------------------------------------------------------------- expander


def test_product_last_axis_fastest():
    points = sw.product(sw.sweep("a", [1, 2]), sw.sweep("b.c", [0.5, 1.5, 2.5]))
    assert len(points) == 6
    assert points[:3] == [{"a": 1, "b.c": v} for v in (0.5, 1.5, 2.5)]
    assert sw.expand(base_config(), points) == points


def test_zip_pairs_and_rejects_unequal_lengths():
    points = sw.zip_(sw.sweep("a", [1, 2]), sw.sweep("b.d.e", ["p", "q"]))
    assert points == [{"a": 1, "b.d.e": "p"}, {"a": 2, "b.d.e": "q"}]
    with pytest.raises(ValueError, match="equal lengths"):
        sw.zip_(sw.sweep("a", [1, 2]), sw.sweep("b.c", [1.0]))


def test_product_of_zip_and_nested_overrides():
    points = sw.product(
        sw.sweep("b.d.e", ["u", "v"]),
        sw.zip_(sw.sweep("a", [1, 2]), sw.sweep("b.c", [0.1, 0.2])),
    )
    assert len(points) == 4 and points[3] == {"b.d.e": "v", "a": 2, "b.c": 0.2}
    base = base_config()
    config = sw.apply_overrides(base, points[3])
    assert (config.a, config.b.c, config.b.d.e) == (2, 0.2, "v")
    assert (base.a, base.b.c, base.b.d.e) == (0, 0.0, "x")  # the base is untouched


@pytest.mark.parametrize("field", ["nosuch", "b.nosuch", "b.d.e.f", "b.c.deeper"])
def test_bad_field_names_rejected_with_the_name(field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        sw.expand(base_config(), sw.sweep(field, [1]))


def test_bad_points_rejected():
    with pytest.raises(ValueError, match="'a' appears in more than one axis"):
        sw.product(sw.sweep("a", [1]), sw.sweep("a", [2]))
    with pytest.raises(ValueError, match="identical"):
        sw.expand(base_config(), sw.sweep("a", [1, 1]))
    with pytest.raises(UserError, match=r"^config\.a=0\.5: .*cannot be casted"):
        sw.apply_overrides(base_config(), {"a": 0.5})  # an int field
    with pytest.raises(UserError, match=r"^config\.a=0\.5"):
        sw.expand(base_config(), sw.sweep("a", [1, 0.5]))  # checked before any point runs


@pytest.mark.parametrize("path", SWEEP_CONFIGS, ids=os.path.basename)
def test_shipped_sweep_configs_follow_the_rules(path):
    """The rules a sweep config meets (README, "Adding a sweep"): its docstring gives the run
    command; get_config/get_sweep with and without :smoke expand against each other; :smoke
    is no bigger than the full sweep; every plot names fields the points have."""
    name = os.path.basename(path)
    with open(path) as f:
        assert "python -m experiments.sweep --config=configs/sweeps/" + name in f.read()
    sizes = {}
    for arg in (None, "smoke"):
        config, axes = sw.load_sweep_file(path + (f":{arg}" if arg else ""))
        points = sw.expand(config, axes)
        sizes[arg] = len(points)
        assert config.runner in sw.RUNNERS
        swept = set().union(*points)
        for spec in config.plots:
            sw.check_plot(spec)
            assert spec.get("series") is None or spec["series"] in swept, spec
            for key in ("x", "y"):
                known = swept | (set(sw.METRICS) if config.runner == "eie" else set())
                assert config.runner == "train" and key == "y" or spec[key] in known, spec
    assert 1 <= sizes["smoke"] <= sizes[None]


# ----------------------------------------------------------------------------- EIE points


@pytest.mark.parametrize("num_pes", [1, 3, 8])
@pytest.mark.parametrize("index_bits", [2, 4])
def test_entry_counts_match_encode(num_pes, index_bits):
    rng = np.random.default_rng(num_pes * 10 + index_bits)
    codes = (rng.random((150, 40)) < 0.08) * rng.integers(1, 16, (150, 40))
    codes[:, 0] = 0
    codes[-1, 1] = 3  # a long gap: padding at every index width
    cfg = eie.EIEConfig(num_pes=num_pes, index_bits=index_bits)
    layer = eie.encode(codes, np.linspace(0, 1, 16, dtype=np.float32), cfg)
    rows, cols = np.nonzero(codes)
    counts, padding = sw.entry_counts(rows, cols, codes.shape, num_pes, index_bits)
    np.testing.assert_array_equal(counts, np.asarray(layer.counts))
    assert padding == layer.num_padding
    np.testing.assert_array_equal(eie.column_counts(codes, num_pes, index_bits), counts)


@pytest.mark.parametrize("index_bits", [2, 4])
def test_entry_counts_for_many_pe_counts_in_one_pass(index_bits):
    """entry_counts_by_column (one radix sort by PE per N) equals encode for every N,
    including N > 256 (16-bit keys) and N that do not divide M."""
    rng = np.random.default_rng(index_bits)
    codes = (rng.random((700, 30)) < 0.05) * rng.integers(1, 16, (700, 30))
    codes[-1, 2] = 5  # a long gap
    cols, rows = np.nonzero(np.ascontiguousarray(codes.T))
    pes = [1, 3, 8, 64, 300]
    found = entry_counts_by_column(rows, cols, codes.shape, pes, index_bits)
    for n, (counts, padding) in zip(pes, found, strict=True):
        cfg = eie.EIEConfig(num_pes=n, index_bits=index_bits)
        layer = eie.encode(codes, np.linspace(0, 1, 16, dtype=np.float32), cfg)
        np.testing.assert_array_equal(counts, np.asarray(layer.counts))
        assert padding == layer.num_padding


@pytest.mark.parametrize("shape", [(700, 30), (3, 70_000), (1, 1)])
def test_nonzeros_by_column_are_column_major(shape):
    """The radix-sorted nonzeros equal np.nonzero of the transposed matrix (also past
    2**16 columns, where the sort key is wider)."""
    rng = np.random.default_rng(1)
    codes = ((rng.random(shape) < 0.3) * rng.integers(1, 16, shape)).astype(np.uint8)
    cols, rows = np.nonzero(np.ascontiguousarray(codes.T))
    found = benchmarks.nonzeros_by_column(codes)
    np.testing.assert_array_equal(found[0], rows)
    np.testing.assert_array_equal(found[1], cols)


@pytest.mark.parametrize(
    "shape, weight_density, weight_bits, seed",
    [
        ((1000, 4096), 0.25, 4, 0),  # even size, several raw blocks
        ((77, 333), 0.09, 3, 5),  # odd size: the last float takes a low half
        ((1001, 3001), 0.3, 8, 2),  # odd, 8-bit codes (another rejection threshold)
        ((9, 31), 0.1, 2, 3),
        ((7, 31), 1.0, 1, 2),  # every weight kept; one code value: no code draws
        ((1, 3), 0.5, 7, 3),
        ((40, 70_001), 0.01, 4, 4),  # past 2**16 columns
    ],
)
def test_synthetic_nonzeros_equal_synthetic_layer(shape, weight_density, weight_bits, seed):
    """The replayed generator gives the layer synthetic_layer draws, bit for bit: where
    its nonzeros are, the codebook and the input after the codes it does not draw."""
    spec = benchmarks.LayerSpec("mine", shape[1], shape[0], weight_density, 0.4)
    cfg = eie.EIEConfig(weight_bits=weight_bits)
    codes, codebook, x = benchmarks.synthetic_layer(spec, seed, cfg)
    rows, cols, found_codebook, found_x = benchmarks.synthetic_nonzeros(spec, seed, cfg)
    want_rows, want_cols = benchmarks.nonzeros_by_column(codes)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(cols, want_cols)
    np.testing.assert_array_equal(found_codebook, codebook)
    np.testing.assert_array_equal(found_x, x)
    assert rows.dtype == cols.dtype == np.int32


def test_synthetic_layer_holds_8_bit_codes():
    spec = benchmarks.get_spec("NT-LSTM")
    small = dataclasses.replace(spec, in_features=60, out_features=50, weight_density=0.9)
    codes, codebook, _ = benchmarks.synthetic_layer(small, 0, eie.EIEConfig(weight_bits=8))
    assert codes.max() > 127 and codes.min() == 0 and codebook.shape == (256,)
    four, _, _ = benchmarks.synthetic_layer(small, 0, eie.EIEConfig(weight_bits=4))
    assert 0 < four.max() <= 15


def test_batched_points_match_simulate():
    """Points of different N, K and depth in one batched call equal simulate() one by one."""
    rng = np.random.default_rng(0)
    cases = []
    for m, k, n, depth in [(60, 50, 4, 1), (60, 50, 4, 8), (33, 20, 1, 2), (70, 90, 7, 3)]:
        codes = (rng.random((m, k)) < 0.15) * rng.integers(1, 16, (m, k))
        x = rng.standard_normal(k) * (rng.random(k) < 0.5)
        cfg = eie.EIEConfig(num_pes=n, fifo_depth=depth, index_bits=2)
        layer = eie.encode(codes, np.linspace(0, 1, 16, dtype=np.float32), cfg)
        active = np.asarray(fixed_point.quantize(x, cfg.act_frac_bits) != 0)
        cases.append((np.asarray(layer.counts)[:, active], cfg, eie.simulate(layer, x, cfg)))
    cycles, busy = sw.evaluate_cycles([c for c, _, _ in cases], [g.fifo_depth for _, g, _ in cases])
    for (_, _, res), c, b in zip(cases, cycles, busy, strict=True):
        np.testing.assert_array_equal(c, res.pe_cycles)
        np.testing.assert_array_equal(b, res.pe_busy)


@pytest.mark.parametrize("merge_lanes", [0, 1 << 20])
def test_packed_points_match_the_oracle_recurrence(monkeypatch, merge_lanes):
    """Points packed several to a track (any N, K including 0, depths up to the history,
    more broadcasts than the history holds), PE counts grouped apart or merged, counts of
    every width (uint8, uint16, int32 by N), in one chunk or split: each equals the NumPy
    recurrence."""
    monkeypatch.setattr(sw.batching, "MERGE_LANES", merge_lanes)
    rng = np.random.default_rng(merge_lanes)
    history = 16
    top = {1: 12, 2: 12, 3: 12, 5: 3000, 8: 3000, 16: 70_000, 40: 70_000}
    counts, depths = [], []
    for b in range(40):
        n = int(rng.choice(list(top)))
        k = 3 * history + 9 if b == 0 else int(rng.integers(0, 30))  # one long, many short
        c = rng.poisson(rng.uniform(0.2, 4), (n, k))
        if k and b % 3 == 0:
            c[rng.integers(n), rng.integers(k)] = top[n]
        counts.append(c.astype(np.int32))
        depths.append(int(rng.integers(1, history + 1)))
    tracks = sw.batching._tracks([c.shape[1] for c in counts], counts[0].shape[1])
    assert max(len(t) for t in tracks) >= 4  # packing is exercised
    for budget in (1 << 25, 20_000):  # one chunk; split in a few
        cycles, busy = sw.evaluate_cycles(counts, depths, max_batch_elements=budget)
        for c, d, got, got_busy in zip(counts, depths, cycles, busy, strict=True):
            np.testing.assert_array_equal(got, eie_oracle.paper_cycles(c, d))
            np.testing.assert_array_equal(got_busy, c.sum(axis=1))


def test_eie_sweep_writes_every_point_and_plots(tmp_path):
    config = small_eie_config()
    records = sw.run_sweep(config, small_eie_axes(), str(tmp_path))
    assert [r["index"] for r in records] == list(range(12))
    one = records[0]["metrics"]
    assert one["total_cycles"] > 0 and 0 < one["load_efficiency"] <= 1
    paths = sw.plot_sweep(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["fig8_load_efficiency_vs_fifo.png"]
    assert png_size(paths[0]) == (768, 528)  # 6.4 x 4.4 inches at 120 dpi
    # A changed config is refused, naming the field that changed.
    changed = sw.apply_overrides(config, {"seed": 1})
    with pytest.raises(UserError, match="config.seed: 0 -> 1"):
        sw.run_sweep(changed, small_eie_axes(), str(tmp_path))
    # Plot specs are presentation: changing them is not a change of sweep.
    retitled = sw.apply_overrides(config, {"plots": [dict(config.plots[0], title="new")]})
    assert sw.run_sweep(retitled, small_eie_axes(), str(tmp_path)) == records


def test_smoke_logs_the_shapes_it_simulates(tmp_path):
    lines = []
    sw.run_sweep(small_eie_config(), small_eie_axes(), str(tmp_path), log=lines.append)
    shapes = [line for line in lines if "simulated as" in line]
    # NT-LSTM is 2400 x 1201 and Alex-8 1000 x 4096; :smoke keeps 5 % of each side, once each.
    assert len(shapes) == 2
    assert "layer NT-LSTM simulated as 120 x 60 (layer_scale 0.05 of 2400 x 1201)" in shapes[0]
    assert "layer Alex-8 simulated as 50 x 205 (layer_scale 0.05 of 1000 x 4096)" in shapes[1]


def test_sweep_over_a_layer_of_ones_own_shape(tmp_path):
    """config.layers declares a layer by shape and densities, beside the Table III names."""
    mine = dict(out_features=96, in_features=40, weight_density=0.2, act_density=0.5)
    config = sw.eie_base_config(layers=dict(mine=mine), num_pes=4, fifo_depth=4)
    axes = sw.product(
        sw.sweep("layer", ["mine", "NT-LSTM"]), sw.sweep("layers.mine.weight_density", [0.1, 0.4])
    )
    config.layer_scale = 1.0
    lines = []
    records = sw.run_sweep(config, axes[:2], str(tmp_path), log=lines.append)
    assert any("layer mine simulated as 96 x 40, weight density 0.1," in ln for ln in lines)
    assert any("layer mine simulated as 96 x 40, weight density 0.4," in ln for ln in lines)
    # The sweep's numbers are simulate()'s on the same synthetic layer.
    for record, density in zip(records, [0.1, 0.4], strict=True):
        spec = benchmarks.own_spec("mine", dict(mine, weight_density=density))
        cfg = eie.EIEConfig(num_pes=4, fifo_depth=4)
        codes, codebook, x = benchmarks.synthetic_layer(spec, 0, cfg)
        res = eie.simulate(eie.encode(codes, codebook, cfg), x, cfg)
        assert record["metrics"]["total_cycles"] == int(res.total_cycles)
        assert record["metrics"]["num_entries"] >= np.count_nonzero(codes)
    assert records[1]["metrics"]["num_entries"] > 2 * records[0]["metrics"]["num_entries"]


def test_rtl_points_match_simulate_beside_paper_points():
    """eie.timing is a sweep axis: rtl and paper points in one sweep each equal simulate()."""
    mine = dict(out_features=90, in_features=50, weight_density=0.2, act_density=0.6)
    config = sw.eie_base_config(layers=dict(mine=mine), index_bits=2)
    axes = sw.product(
        sw.sweep("eie.timing", ["paper", "rtl"]),
        sw.sweep("eie.num_pes", [1, 3, 8]),
        sw.sweep("eie.fifo_depth", [1, 2, 5]),
    )
    found = sw.evaluate_eie_points(config, axes)
    spec = benchmarks.own_spec("mine", mine)
    differ = 0
    for point, metrics in zip(axes, found, strict=True):
        cfg = eie.EIEConfig(
            num_pes=point["eie.num_pes"],
            fifo_depth=point["eie.fifo_depth"],
            timing=point["eie.timing"],
            index_bits=2,
        )
        codes, codebook, x = benchmarks.synthetic_layer(spec, 0, cfg)
        res = eie.simulate(eie.encode(codes, codebook, cfg), x, cfg)
        assert metrics["total_cycles"] == int(res.total_cycles), point
        assert metrics["busy_entries"] == int(np.sum(res.pe_busy)), point
        paper = found[axes.index(dict(point, **{"eie.timing": "paper"}))]
        differ += metrics["total_cycles"] != paper["total_cycles"]
    assert differ >= 9  # the rtl timing is not the paper's


def test_plot_where_selects_points():
    records = [
        {"overrides": {"t": t, "x": x}, "metrics": {"y": 10 * (t == "rtl") + x}}
        for t in ("paper", "rtl")
        for x in (1, 2)
    ]
    fig = sw.figure(records, dict(x="x", y="y", name="a.png", where={"t": "rtl"}))
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == [11, 12]
    with pytest.raises(UserError, match="plot where"):
        sw.figure(records, dict(x="x", y="y", name="a.png", where={"t": "none"}))


@pytest.mark.parametrize(
    "edit, match",
    [
        (dict(layer="nosuch"), r"config.layer='nosuch': unknown; allowed: \['mine', 'Alex-6'"),
        ({"layers.mine.weight_density": 1.5}, r"config.layers.mine.weight_density=1.5: allowed: "),
        ({"layers.mine.in_features": 0}, r"config.layers.mine.in_features=0: allowed: an int >= 1"),
    ],
)
def test_bad_layer_of_ones_own_is_named(tmp_path, edit, match):
    mine = dict(out_features=96, in_features=40, weight_density=0.2, act_density=0.5)
    config = sw.apply_overrides(sw.eie_base_config(layers=dict(mine=mine)), edit)
    with pytest.raises(UserError, match=match):
        sw.run_sweep(config, sw.sweep("eie.num_pes", [1, 2]), str(tmp_path))
    assert not sw.results_files(str(tmp_path))  # refused before any point ran


def test_legend_title_names_the_series(tmp_path):
    records = [
        {"index": i, "overrides": {"layer": layer, "eie.num_pes": n}, "metrics": {"c": n}}
        for i, (layer, n) in enumerate([("A", 1), ("A", 2), ("B", 1), ("B", 2)])
    ]
    spec = dict(x="eie.num_pes", y="c", series="layer", name="c.png")
    legend = sw.figure(records, spec).axes[0].get_legend()
    assert legend.get_title().get_text() == "layer"
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B"]
    spec["legend_title"] = "benchmark layer"
    title = sw.figure(records, spec).axes[0].get_legend().get_title().get_text()
    assert title == "benchmark layer"
    with pytest.raises(UserError, match="plot option 'legend'"):
        sw.check_plot(dict(spec, legend="x"))


def test_second_sweep_on_one_workdir_is_refused(tmp_path):
    """While one process sweeps into a workdir, a second is refused in one line; a killed
    holder releases the lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    cmd = [
        sys.executable,
        "-m",
        "experiments.sweep",
        "--config=configs/sweeps/fig8_fifo_depth.py:smoke",
    ]
    cmd.append(f"--workdir={tmp_path}")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: --workdir={tmp_path} is in use by another process (pid {holder.pid}); wait "
        "for it to finish or use another --workdir"
    )
    assert "Traceback" not in out.stderr and not sw.results_files(str(tmp_path))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    records = sw.run_sweep(small_eie_config(), small_eie_axes()[:2], str(tmp_path))
    assert len(records) == 2


LOCK_HOLDER = """
import sys, time
from eie_jax.utils import workdir
with workdir.lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("field, value", [("eie.fifo_depth", "4"), ("eie.timing", "rtl")])
def test_override_of_a_swept_field_is_refused_before_any_work(tmp_path, field, value):
    """--config.<field> of a field the sweep varies would be replaced by every point's value
    without a word: one line naming it and where to change the values, nothing written."""
    workdir = tmp_path / "w"
    out = run_entry_point(
        "experiments.sweep", f"--config={FIG8_SMOKE}", f"--config.{field}={value}",
        f"--workdir={workdir}",
    )  # fmt: skip
    assert_one_line_error(out)
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: --config.{field}: the sweep varies this field (axis {field}); change the "
        "sweep's values in configs/sweeps/fig8_fifo_depth.py instead"
    )
    assert not workdir.exists()


def test_swept_fields_name_their_axis():
    """A field a point sets, in whole or in part, is refused; fields no point sets are not
    (a dict value merged into a group sets only the fields it names)."""
    axes = sw.product(sw.sweep("b.c", [1.0, 2.0]), sw.sweep("b.d", [{"e": "p"}, {"e": "q"}]))
    sw.expand(base_config(), axes)
    sw.check_not_swept(["a", "b.cc", "b.d.f"], axes, "s.py")  # b.d's values name only e
    for field, axis in [("b.c", "b.c"), ("b.d.e", "b.d"), ("b", "b.c"), ("b.c.x", "b.c")]:
        with pytest.raises(UserError, match=rf"^--config\.{field}: .*\(axis {axis}\); .* s\.py"):
            sw.check_not_swept(["a", field], axes, "s.py")


# A results line that is not a point's record -> what the error says of it.
DAMAGED_LINES = {
    "no overrides": (
        b'{"index": 1, "metrics": {}}',
        "not a sweep point's record (lacks 'overrides')",
    ),
    "no index": (
        b'{"overrides": {"layer": "Alex-7"}, "metrics": {}}',
        "not a sweep point's record (lacks 'index')",
    ),
    "bad index": (
        b'{"index": "1", "overrides": {}, "metrics": {}}',
        "not a sweep point's record ('index' is '1', not a point number)",
    ),
    "array": (
        b"[1, 2]",
        "not a sweep point's record (a JSON array, not an object with index, overrides, metrics)",
    ),
    "bad metrics": (
        b'{"index": 1, "overrides": {}, "metrics": null}',
        "not a sweep point's record ('metrics' is a JSON null, not an object)",
    ),
    "not UTF-8": (b'{"index": 1, "caf\xe9": 1}', r"not UTF-8 (byte 18 is b'\xe9')"),
    "not JSON": (b'{"index": 1,,}', "not a JSON line (Expecting property name"),
}


def _damaged_fig8_workdir(workdir, damage: str) -> tuple[str, bytes]:
    """The fig8 :smoke sweep recorded in `workdir` (with --config.seed=1) and its results
    file: a point, the damaged line 2, a partial last line. Returns its path and bytes."""
    config, axes = sw.load_sweep_file(os.path.join(ROOT, FIG8_SMOKE))
    config = sw.apply_overrides(config, {"seed": 1})
    points = sw.expand(config, axes)
    store = sw.ResultStore(str(workdir), 0)
    store.open(config, points)
    record = {"index": 0, "overrides": points[0], "metrics": {"load_efficiency": 0.5}}
    data = json.dumps(record).encode() + b"\n" + DAMAGED_LINES[damage][0] + b'\n{"index": 2, "ov'
    with open(store.results_path, "wb") as f:
        f.write(data)
    return store.results_path, data


@pytest.mark.parametrize("damage", sorted(DAMAGED_LINES))
def test_damaged_results_line_is_named(tmp_path, damage):
    path, data = _damaged_fig8_workdir(tmp_path, damage)
    with pytest.raises(UserError) as e:
        sw.ResultStore(str(tmp_path), 0).records()  # the writer's own file
    assert str(e.value).startswith(f"{path}:2: {DAMAGED_LINES[damage][1]}"), str(e.value)
    assert str(e.value).endswith("; delete that line to recompute its point")
    with open(path, "rb") as f:
        assert f.read() == data  # left as it is, its partial last line too


@pytest.mark.parametrize("damage", [b'{"config": ', b"[]", b'{"points": []}', b"\xff"])
def test_damaged_sweep_config_is_named_by_the_plot(tmp_path, damage):
    (tmp_path / sw.SWEEP_FILE).write_bytes(damage)
    path = re.escape(os.path.join(tmp_path, sw.SWEEP_FILE))
    with pytest.raises(UserError, match=rf"^{path}: unreadable \("):
        sw.plot_sweep(str(tmp_path))
    assert (tmp_path / sw.SWEEP_FILE).read_bytes() == damage


@pytest.mark.parametrize("entry", ["sweep", "plot"])
@pytest.mark.parametrize("damage", ["no overrides", "not UTF-8"])
def test_damaged_results_are_one_line_from_the_entry_points(tmp_path, entry, damage):
    """A resumed sweep and the plot both name the damaged line and change nothing. The
    sweep's --config.seed=1 (a field no axis varies) is not refused, nor are the swept
    fields that the config file itself sets (eie.fifo_depth, layer, eie.timing)."""
    path, data = _damaged_fig8_workdir(tmp_path, damage)
    args = [f"--config={FIG8_SMOKE}", "--config.seed=1"] if entry == "sweep" else []
    out = run_entry_point(f"experiments.{entry}", *args, f"--workdir={tmp_path}")
    assert_one_line_error(out)
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {path}:2: {DAMAGED_LINES[damage][1]}; delete that line to recompute its point"
    )
    with open(path, "rb") as f:
        assert f.read() == data
    assert not glob.glob(str(tmp_path / "*.png"))


def test_sharded_over_8_devices_matches_one_device(tmp_path):
    workdir = str(tmp_path / "sharded")
    script = textwrap.dedent(
        f"""
        import json, jax
        from eie_jax import sweep as sw
        from tests.helpers import small_eie_axes, small_eie_config
        assert len(jax.devices()) == 8, jax.devices()
        records = sw.run_sweep(small_eie_config(), small_eie_axes(), {workdir!r})
        print(json.dumps(records))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["PYTHONPATH"] = ROOT
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sharded = json.loads(out.stdout.strip().splitlines()[-1])
    single = sw.run_sweep(
        small_eie_config(), small_eie_axes(), str(tmp_path / "single"), devices=jax.devices()[:1]
    )
    assert sharded == single


# ----------------------------------------------------------------------------- resume


def _assert_each_point_once(workdir, total):
    """Every point has exactly one line, over all the processes' results files."""
    lines = []
    for path in sw.results_files(str(workdir)):
        with open(path) as f:
            lines += [json.loads(line) for line in f]
    assert sorted(r["index"] for r in lines) == list(range(total))
    for r in lines:
        assert r["metrics"]["score"] == r["overrides"]["a"] * 10
        assert r["metrics"]["echo"] == r["overrides"]["b.d.e"]


def test_resume_after_an_exception(tmp_path, fake_train, monkeypatch):
    import fake_train_mod

    workdir = str(tmp_path / "run")
    monkeypatch.setenv("FAKE_TRAIN_FAIL_AT", "4")
    with pytest.raises(RuntimeError, match="interrupted"):
        sw.run_sweep(train_config(), train_axes(), workdir)
    assert len(sw.load_results(workdir)) == 3
    # A line cut short by a crash mid-write is dropped, not mixed into the next line.
    with open(os.path.join(workdir, sw.RESULTS_FILE.format(process=0)), "a") as f:
        f.write('{"index": 5, "overr')
    monkeypatch.delenv("FAKE_TRAIN_FAIL_AT")
    fake_train_mod.CALLS.clear()
    records = sw.run_sweep(train_config(), train_axes(), workdir)
    assert len(records) == 6 and len(fake_train_mod.CALLS) == 3  # only the missing points
    _assert_each_point_once(workdir, 6)
    assert png_size(sw.plot_sweep(workdir)[0]) == (768, 528)


def test_resume_after_kill(tmp_path, fake_train):
    config_file = tmp_path / "train_sweep.py"
    config_file.write_text(
        textwrap.dedent(
            """
            from tests.helpers import train_axes, train_config
            def get_config(arg=None):
                return train_config()
            def get_sweep(arg=None):
                return train_axes()
            """
        )
    )
    workdir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{fake_train}", FAKE_TRAIN_SLEEP="0.4")
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "experiments.sweep", f"--config={config_file}"]
    cmd.append(f"--workdir={workdir}")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE)
    results = workdir / sw.RESULTS_FILE.format(process=0)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(results.read_text().splitlines())
    assert 2 <= done_before < 6
    env["FAKE_TRAIN_SLEEP"] = "0"
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{done_before} already done" in out.stderr
    _assert_each_point_once(workdir, 6)
    assert png_size(workdir / "score.png") == (768, 528)
