"""Benchmark of the sweep runner: the Fig. 8 + Fig. 11 sweeps, where their time goes, and
one simulate call per point.

python -m experiments.bench_sweep --workdir=runs/bench_sweep

1. Runs the EIE Fig. 8 (9 layers x 9 FIFO depths) and Fig. 11 (9 layers x 9 PE counts)
   sweeps from scratch, one after the other in this process (host preparation,
   compilation, evaluation and result files all timed; the Fig. 11 sweep reuses the
   synthetic layers the Fig. 8 sweep drew, as any second sweep of a process does).
2. Splits that time: drawing the synthetic layers (their nonzeros alone), entry counts
   (as a sweep counts them, a thread per core; checked against one
   `sparse_format.entry_counts` call per (layer, PE count)), and the batched evaluation
   (`batching`: the points packed on tracks, one compilation) with empty jit caches and
   compiled (median of --repeats).
3. Alex-6 alone at 64 PEs / FIFO 8, cycles only, compiled (eie.cycles_from_counts),
   against the 0.025 ms a plain C loop takes (quoted: measured once on a 2-core machine);
   timed first, in the fresh process, then in a child process with XLA's default loop
   runtime (eie_jax.utils.xla_flags' option at XLA's own 1 KiB: every operation of the loop
   body a task of its own).
4. One `eie.simulate` call per point (every --baseline_stride-th point), first call
   (compiling its shape) and second call timed apart; every point's total_cycles checked.
Prints a table, beside the numbers last recorded in docs/benchmarks.md (RECORDED: the
commit and machine that measured them; a former implementation is compared by checking
out its revision and running its bench, not by keeping a copy here), and writes
DIR/bench_sweep.json.
"""

import functools
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
from absl import flags

from eie_jax import eie, sweep
from eie_jax.compression.sparse_format import entry_counts
from eie_jax.eie import benchmarks
from eie_jax.sweep import eie_points
from eie_jax.utils import cli as errors
from eie_jax.utils import workdir as workdirs
from eie_jax.utils import xla_flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the sweeps and the JSON.")
# The last numbers recorded in docs/benchmarks.md (Sweep speed), for the table's column.
RECORDED = dict(
    commit="f65e1d8", machine="2-core CPU, idle", end_to_end_s=3.50, draw_layers_s=0.47,
    entry_counts_s=1.49, eval_with_compile_s=0.82, eval_point_ms=0.343, simulate_ms=5.72,
    speedup=16.7, alex6_ms=0.353, alex6_default_loops_ms=0.987,
)  # fmt: skip
_STRIDE = flags.DEFINE_integer(
    "baseline_stride", 1, "Time one simulate call for every n-th point only (1: all points)."
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions of compiled calls (median).")
_ALEX6_ONLY = flags.DEFINE_bool(
    "alex6_only", False, "Only time Alex-6's cycles and print them as JSON (the child run)."
)
flags.mark_flags_as_required(["workdir"])

SWEEPS = {
    "fig8": "configs/sweeps/fig8_fifo_depth.py",
    "fig11": "configs/sweeps/fig11_pe_count.py",
}
C_LOOP_MS = 0.025  # Alex-6, 64 PEs, FIFO 8: a plain C loop on one core (quoted)


def _median_s(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_sweeps(workdir):
    """Each sweep from an empty workdir; returns per-sweep timings and all configs/points."""
    rows, everything = {}, []
    for name, path in SWEEPS.items():
        config, axes = sweep.load_sweep_file(path)
        # The paper timing's points (162 with Fig. 11): the Fig. 8 config's rtl series
        # doubles its points and is not part of what these timings compare.
        axes = [a for a in axes if a.get("eie.timing", "paper") == "paper"]
        out = os.path.join(workdir, name)
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        records = sweep.run_sweep(config, axes, out, log=lambda msg: None)
        wall = time.perf_counter() - start
        rows[name] = {"points": len(records), "wall_s": wall}
        everything += [(config, r) for r in records]
        print(f"{name}: {len(records)} points in {wall:.2f} s ({len(records) / wall:.1f} /s)")
    return rows, everything


def host_preparation(everything):
    """Seconds to draw the layers as a sweep does (their nonzeros alone, a thread per core)
    and to count entries as a sweep does (every (layer, PE count) on a thread per core);
    the counts are checked against one `entry_counts` call per (layer, PE count)."""
    configs = [sweep.apply_overrides(c, r["overrides"]) for c, r in everything]
    eie_points.clear_layers()
    host = eie_points.EIEHost(log=lambda msg: None)
    keys = host.note(configs)
    start = time.perf_counter()
    host.draw(keys)
    draw_s = time.perf_counter() - start
    start = time.perf_counter()
    host.count()
    counts_s = time.perf_counter() - start
    for (layer_key, n, bits, _), found in host.counts.items():
        _, _, rows, cols, shape = host.layer(layer_key)
        one = entry_counts(rows, cols, shape, n, bits)
        assert found[1] == one[1] and np.array_equal(found[0], one[0]), layer_key[0].name
    return draw_s, counts_s


def evaluation(everything, repeats):
    """(cold, compiled) seconds of each sweep's batched evaluation (points packed)."""
    cold = compiled = 0.0
    for config in {id(c): c for c, _ in everything}.values():
        prepared = sweep.prepare_eie_points(
            config, [r["overrides"] for c, r in everything if c is config], log=lambda m: None
        )
        run = functools.partial(
            sweep.evaluate_cycles,
            [p.counts for p in prepared],
            [p.cfg.fifo_depth for p in prepared],
            max_batch_elements=config.max_batch_elements,
        )
        jax.clear_caches()
        start = time.perf_counter()
        jax.block_until_ready(run())
        cold += time.perf_counter() - start
        compiled += _median_s(run, repeats)
    return cold, compiled


def alex6_cycles_only(repeats):
    """Compiled ms of Alex-6's cycles alone (64 PEs, FIFO 8), eie.cycles_from_counts."""
    config = eie_points.eie_base_config(num_pes=64, fifo_depth=8)
    config.layer = "Alex-6"
    (point,) = sweep.prepare_eie_points(config, [{}], log=lambda m: None)
    counts = jax.device_put(point.counts)
    active = jax.device_put(np.ones(point.counts.shape[1], bool))
    run = functools.partial(eie.cycles_from_counts, counts, active, 8, history=8)
    cycles = int(np.max(np.asarray(jax.block_until_ready(run())[0])))
    return _median_s(run, repeats) * 1e3, cycles


def alex6_default_loops(repeats):
    """alex6_cycles_only in a child process whose XLA runs loops at its default threshold."""
    env = dict(os.environ, XLA_FLAGS=xla_flags.with_small_loop_kernels("", threshold=1024))
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.bench_sweep",
            "--workdir=unused",
            "--alex6_only",
            f"--repeats={repeats}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ms, cycles = json.loads(child.stdout.strip().splitlines()[-1])
    return ms, cycles


def per_point_simulate(everything, stride):
    """One eie.simulate call per point: (first-call, second-call) seconds, cycles checked."""
    layers, encoded = {}, {}
    encode_s, first_s, warm_s, checked = 0.0, [], [], 0
    for config, record in everything[::stride]:
        point = sweep.apply_overrides(config, record["overrides"])
        cfg = sweep.eie_config_of(point)
        if point.layer not in layers:
            layers[point.layer] = benchmarks.synthetic_layer(
                sweep.layer_spec_of(point), point.seed, cfg
            )
        codes, codebook, x = layers[point.layer]
        key = (point.layer, cfg.num_pes, cfg.index_bits)
        if key not in encoded:
            start = time.perf_counter()
            encoded[key] = eie.encode(codes, codebook, cfg)
            encode_s += time.perf_counter() - start
        times = []
        for _ in range(2):
            start = time.perf_counter()
            res = jax.block_until_ready(eie.simulate(encoded[key], x, cfg))
            times.append(time.perf_counter() - start)
        first_s.append(times[0])
        warm_s.append(times[1])
        if int(res.total_cycles) != record["metrics"]["total_cycles"]:
            raise AssertionError(
                f"{record['overrides']}: batched {record['metrics']['total_cycles']} cycles, "
                f"simulate {int(res.total_cycles)}"
            )
        checked += 1
    return encode_s, np.asarray(first_s), np.asarray(warm_s), checked


def main(argv):
    del argv
    if _ALEX6_ONLY.value:
        print(json.dumps(alex6_cycles_only(_REPEATS.value)))
        return
    with workdirs.session(_WORKDIR.value, "bench_sweep"):
        measure()


def measure():
    """The sweeps into --workdir, then the tables (printed and written there)."""
    print(f"devices: {jax.devices()}")
    # First, in a fresh process: after the sweeps the same call measures 30-40 % slower
    # here. A millisecond call: ten times the repetitions, so the median is a steady state.
    alex_ms, alex_cycles = alex6_cycles_only(10 * _REPEATS.value)
    default_ms, default_cycles = alex6_default_loops(10 * _REPEATS.value)
    if default_cycles != alex_cycles:
        raise AssertionError(f"Alex-6: {alex_cycles} cycles, {default_cycles} at XLA's default")
    eie_points.clear_layers()  # the sweeps draw Alex-6 afresh, as from scratch
    rows, everything = run_sweeps(_WORKDIR.value)
    n = sum(r["points"] for r in rows.values())
    total_wall = sum(r["wall_s"] for r in rows.values())
    draw_s, counts_s = host_preparation(everything)
    eval_cold_s, eval_compiled_s = evaluation(everything, _REPEATS.value)
    encode_s, first_s, warm_s, checked = per_point_simulate(everything, _STRIDE.value)
    sim_ms = float(np.median(warm_s)) * 1e3
    point_ms = eval_compiled_s / n * 1e3
    result = {
        "devices": [str(d) for d in jax.devices()],
        "sweeps": rows,
        "total_points": n,
        "end_to_end_s": total_wall,
        "draw_layers_s": draw_s,
        "entry_counts_s": counts_s,
        "eval_with_compile_s": eval_cold_s,
        "eval_compiled_s": eval_compiled_s,
        "simulate_points_timed": checked,
        "simulate_encode_s": encode_s,
        "simulate_first_call_ms_median": float(np.median(first_s)) * 1e3,
        "simulate_second_call_ms_median": sim_ms,
        "speedup_compiled_vs_simulate": sim_ms / point_ms,
        "alex6_cycles_only_ms": alex_ms,
        "alex6_total_cycles": alex_cycles,
        "alex6_vs_c_loop": alex_ms / C_LOOP_MS,
        "alex6_default_loops_ms": default_ms,
        "alex6_default_loops_vs_c_loop": default_ms / C_LOOP_MS,
        "recorded": RECORDED,
    }
    r = RECORDED
    lines = [
        f"| measure | this run | recorded ({r['commit']}, {r['machine']}) |",
        "|---|---|---|",
        f"| Fig. 8 + Fig. 11 end to end, {n} points (fig8 {rows['fig8']['wall_s']:.2f} s, "
        f"fig11 {rows['fig11']['wall_s']:.2f} s) | {total_wall:.2f} s | {r['end_to_end_s']} s |",
        "| drawing the 9 synthetic layers (nonzeros alone), a thread per core | "
        f"{draw_s:.2f} s | {r['draw_layers_s']} s |",
        f"| entry counts, all (layer, PE count), a thread per core | {counts_s:.2f} s | "
        f"{r['entry_counts_s']} s |",
        f"| evaluation with compilation (points packed on tracks) | {eval_cold_s:.2f} s | "
        f"{r['eval_with_compile_s']} s |",
        f"| evaluation compiled, per point (median of {_REPEATS.value}) | {point_ms:.3f} ms | "
        f"{r['eval_point_ms']} ms |",
        f"| one simulate call per point, compiled, median ({checked} points) | {sim_ms:.2f} ms | "
        f"{r['simulate_ms']} ms |",
        f"| speedup per point, compiled, over simulate | {sim_ms / point_ms:.1f}x | "
        f"{r['speedup']}x |",
        f"| Alex-6 cycles only, 64 PEs, FIFO 8, compiled, median of {10 * _REPEATS.value} "
        f"(C loop: {C_LOOP_MS} ms, quoted) | {alex_ms:.3f} ms ({alex_ms / C_LOOP_MS:.0f}x) | "
        f"{r['alex6_ms']} ms |",
        f"| the same at XLA's default loop runtime (a child process) | {default_ms:.3f} ms "
        f"({default_ms / C_LOOP_MS:.0f}x) | {r['alex6_default_loops_ms']} ms |",
    ]
    print("\n".join(lines))
    path = os.path.join(_WORKDIR.value, "bench_sweep.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    errors.run(main)
