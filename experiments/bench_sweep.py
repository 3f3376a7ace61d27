"""Benchmark of the sweep runner: the Fig. 8 + Fig. 11 sweeps and one simulate call per point.

python -m experiments.bench_sweep --workdir=runs/bench_sweep

Runs the EIE Fig. 8 (9 layers x 9 FIFO depths) and Fig. 11 (9 layers x 9 PE counts)
sweeps from scratch (host preparation, compilation, evaluation and result files all
timed), then evaluates the same 162 points (a) batched again, compiled, and (b) with one
`eie.simulate` call per point, as a sweep without batching would, first call (compiling
its shape) and second call timed apart. Every point's total_cycles is checked against the
per-point simulate. Prints a table and writes DIR/bench_sweep.json.
"""

import json
import os
import shutil
import time

import jax
import numpy as np
from absl import flags

from eie_jax import eie, errors, sweep
from eie_jax.eie import benchmarks

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the sweeps and the JSON.")
_STRIDE = flags.DEFINE_integer(
    "baseline_stride", 1, "Time one simulate call for every n-th point only (1: all points)."
)
flags.mark_flags_as_required(["workdir"])

SWEEPS = {
    "fig8": "configs/sweeps/fig8_fifo_depth.py",
    "fig11": "configs/sweeps/fig11_pe_count.py",
}


def run_sweeps(workdir):
    """Each sweep from an empty workdir; returns per-sweep timings and all configs/points."""
    rows, everything = {}, []
    for name, path in SWEEPS.items():
        config, axes = sweep.load_sweep_file(path)
        out = os.path.join(workdir, name)
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        records = sweep.run_sweep(config, axes, out, log=lambda msg: None)
        wall = time.perf_counter() - start
        rows[name] = {"points": len(records), "wall_s": wall, "points_per_s": len(records) / wall}
        everything += [(config, r) for r in records]
        print(f"{name}: {len(records)} points in {wall:.2f} s ({len(records) / wall:.1f} /s)")
    return rows, everything


def batched_eval(everything):
    """Host preparation, then the batched evaluation of each sweep's points, as the sweep
    runs it: first with empty jit caches (compilation included), then compiled."""
    prep_s, cold_s, warm_s = 0.0, 0.0, 0.0
    for config in {id(c): c for c, _ in everything}.values():
        start = time.perf_counter()
        prepared = sweep.prepare_eie_points(
            config, [r["overrides"] for c, r in everything if c is config]
        )
        prep_s += time.perf_counter() - start
        counts = [p.counts for p in prepared]
        depths = [p.cfg.fifo_depth for p in prepared]
        jax.clear_caches()
        for rep in range(2):
            start = time.perf_counter()
            sweep.evaluate_cycles(counts, depths, max_batch_elements=config.max_batch_elements)
            elapsed = time.perf_counter() - start
            if rep == 0:
                cold_s += elapsed
            else:
                warm_s += elapsed
    return prep_s, cold_s, warm_s


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
    os.makedirs(_WORKDIR.value, exist_ok=True)
    print(f"devices: {jax.devices()}")
    rows, everything = run_sweeps(_WORKDIR.value)
    total_points = sum(r["points"] for r in rows.values())
    total_wall = sum(r["wall_s"] for r in rows.values())
    prep_s, cold_s, warm_batched_s = batched_eval(everything)
    encode_s, first_s, warm_s, checked = per_point_simulate(everything, _STRIDE.value)

    n = total_points
    unbatched_per_point = (encode_s + first_s.sum()) / checked
    result = {
        "devices": [str(d) for d in jax.devices()],
        "sweeps": rows,
        "total_points": n,
        "total_wall_s": total_wall,
        "total_points_per_s": n / total_wall,
        "batched_host_prep_s": prep_s,
        "batched_eval_with_compile_s": cold_s,
        "batched_eval_compiled_s": warm_batched_s,
        "simulate_points_timed": checked,
        "simulate_encode_s": encode_s,
        "simulate_first_call_s_per_point": float(first_s.mean()),
        "simulate_second_call_s_per_point": float(warm_s.mean()),
        "speedup_eval_with_compile": float(first_s.mean()) / (cold_s / n),
        "speedup_eval_compiled": float(warm_s.mean()) / (warm_batched_s / n),
        "speedup_end_to_end": unbatched_per_point / (total_wall / n),
    }
    lines = [
        "| measure (per point = total / points) | batched sweep | one simulate call per point |",
        "|---|---|---|",
        f"| Fig. 8 + Fig. 11 sweeps, {n} points, wall: prep + compile + eval + files | "
        f"{total_wall:.2f} s (fig8 {rows['fig8']['wall_s']:.2f} s, fig11 "
        f"{rows['fig11']['wall_s']:.2f} s), {n / total_wall:.1f} points/s | |",
        f"| host preparation (counts vs eie.encode) | {prep_s:.2f} s | {encode_s:.2f} s "
        f"({checked} points) |",
        f"| evaluation incl. compilation, per point | {cold_s / n * 1e3:.1f} ms | "
        f"{first_s.mean() * 1e3:.1f} ms | ",
        f"| evaluation compiled, per point | {warm_batched_s / n * 1e3:.2f} ms | "
        f"{warm_s.mean() * 1e3:.2f} ms |",
        f"| end to end, per point | {total_wall / n * 1e3:.1f} ms | "
        f"{unbatched_per_point * 1e3:.1f} ms |",
        f"| speedup: eval incl. compile / compiled / end to end | "
        f"{result['speedup_eval_with_compile']:.1f}x / {result['speedup_eval_compiled']:.1f}x / "
        f"{result['speedup_end_to_end']:.1f}x | |",
    ]
    print("\n".join(lines))
    path = os.path.join(_WORKDIR.value, "bench_sweep.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    errors.run(main)
