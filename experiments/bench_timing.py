"""Wall time of the two timing models, cycles only (eie.simulate_cycles), on Table III layers.

    JAX_PLATFORMS=cpu python -m experiments.bench_timing --layers=Alex-6 --repeats=20

Prints one row per layer: cycles and median wall time (after compilation) of the paper and the
rtl timing, and their ratio, all measured in the same run. Then the cycles of both timings on
the reference simulator's small case (1024x1024, 4 % weights, 30 % activations, 64 PEs, FIFO 1,
2, 8), where the reference simulator gave 800 / 569 / 394 against the paper model's 532 / 446 /
382 on its encodings; ours are random layers at those densities.
"""

import functools

import jax
import numpy as np
from absl import flags

from eie_jax import eie
from eie_jax.eie import benchmarks
from eie_jax.utils import cli as errors
from eie_jax.utils.timer import interleaved_medians

_LAYERS = flags.DEFINE_list("layers", ["Alex-6"], "Table III layers to time.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 20, "Timed runs per measurement (median).", lower_bound=1
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic layers.", lower_bound=0)
_SMALL_SEEDS = flags.DEFINE_integer(
    "small_seeds", 3, "Random layers of the small case.", lower_bound=1
)
flags.register_validator(
    "layers",
    lambda names: set(names) <= set(benchmarks.LAYERS),
    f"each a Table III layer: {', '.join(benchmarks.LAYERS)}",
)
SMALL_DEPTHS = (1, 2, 8)


def main(argv):
    del argv
    specs = [benchmarks.get_spec(name) for name in _LAYERS.value]
    print(
        f"device: {jax.devices()[0]}; medians of {_REPEATS.value} interleaved runs after "
        "compilation"
    )
    print("| layer | paper cycles | rtl cycles | paper ms | rtl ms | rtl / paper time |")
    print("|---|---|---|---|---|---|")
    for spec in specs:
        cfg = eie.EIEConfig()
        codes, codebook, x = benchmarks.synthetic_layer(spec, _SEED.value, cfg)
        layer = eie.encode(codes, codebook, cfg)
        cfgs = {mode: cfg.replace(timing=mode) for mode in ("paper", "rtl")}
        runs = {m: functools.partial(eie.simulate_cycles, layer, x, c) for m, c in cfgs.items()}
        seconds = interleaved_medians(runs, _REPEATS.value)
        pc, rc = (int(runs[mode]()[0].max()) for mode in ("paper", "rtl"))
        ps, rs = seconds["paper"], seconds["rtl"]
        print(f"| {spec.name} | {pc} | {rc} | {1e3 * ps:.2f} | {1e3 * rs:.2f} | {rs / ps:.2f} |")
    small_case()


def small_case():
    """Paper vs rtl cycles on the reference simulator's small layer, one row per random layer."""
    print("\n1024x1024, 4 % weights, 30 % activations, 64 PEs: paper / rtl cycles (rtl / paper)")
    print("| seed | " + " | ".join(f"FIFO {d}" for d in SMALL_DEPTHS) + " |")
    print("|---" * (len(SMALL_DEPTHS) + 1) + "|")
    for seed in range(_SMALL_SEEDS.value):
        rng = np.random.default_rng(seed)
        keep = rng.random((1024, 1024)) < 0.04
        codes = np.where(keep, rng.integers(1, 16, (1024, 1024)), 0)
        x = (rng.random(1024) < 0.3) * np.abs(rng.standard_normal(1024))
        cells = []
        for depth in SMALL_DEPTHS:
            cfg = eie.EIEConfig(fifo_depth=depth)
            layer = eie.encode(codes, np.linspace(0, 1, 16), cfg)
            paper = int(eie.simulate_cycles(layer, x, cfg)[0].max())
            rtl = int(eie.simulate_cycles(layer, x, cfg.replace(timing="rtl"))[0].max())
            cells.append(f"{paper} / {rtl} ({rtl / paper:.2f})")
        print(f"| {seed} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    errors.run(main)
