"""Wall time of the two timing models, cycles only (eie.simulate_cycles), on Table III layers.

    JAX_PLATFORMS=cpu python -m experiments.bench_timing --layers=Alex-6 --repeats=20

Prints one row per layer: cycles and median wall time (after compilation) of the paper and
the rtl timing, and their ratio, all measured in the same run.
"""

import functools
import statistics
import time

import jax
from absl import app, flags

from eie_jax import eie, errors
from eie_jax.eie import benchmarks

_LAYERS = flags.DEFINE_list("layers", ["Alex-6"], "Table III layers to time.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed runs per measurement (median).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic layers.")


def median_time(fn, repeats):
    """Median wall time of fn() over `repeats` runs, after one run that compiles."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    specs = [benchmarks.get_spec(name) for name in _LAYERS.value]
    if _REPEATS.value < 1:
        raise errors.UserError(f"--repeats={_REPEATS.value}: must be >= 1")
    print(f"device: {jax.devices()[0]}; medians of {_REPEATS.value} runs after compilation")
    print("| layer | paper cycles | rtl cycles | paper ms | rtl ms | rtl / paper time |")
    print("|---|---|---|---|---|---|")
    for spec in specs:
        cfg = eie.EIEConfig()
        codes, codebook, x = benchmarks.synthetic_layer(spec, _SEED.value, cfg)
        layer = eie.encode(codes, codebook, cfg)
        row = {}
        for mode in ("paper", "rtl"):
            mcfg = cfg.replace(timing=mode)
            cycles = int(eie.simulate_cycles(layer, x, mcfg)[0].max())
            run = functools.partial(eie.simulate_cycles, layer, x, mcfg)
            seconds = median_time(run, _REPEATS.value)
            row[mode] = (cycles, seconds)
        (pc, ps), (rc, rs) = row["paper"], row["rtl"]
        print(f"| {spec.name} | {pc} | {rc} | {1e3 * ps:.2f} | {1e3 * rs:.2f} | {rs / ps:.2f} |")


if __name__ == "__main__":
    app.run(errors.run_main(main))
