"""Helpers of the benchmark scripts: medians after compilation, and the machine they ran on."""

import os
import platform
import statistics
import time

import jax


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median wall time of each fn() over `repeats` rounds, after one run that compiles.

    Each round runs every fn once in turn, so a load spike on a shared machine hits all
    of them alike and their ratios stay fair.
    """
    times = {name: [] for name in fns}
    for fn in fns.values():
        jax.block_until_ready(fn())
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def median_time(fn, repeats: int) -> float:
    """Median wall time of fn() over `repeats` runs, after one run that compiles."""
    return interleaved_medians({"fn": fn}, repeats)["fn"]


def machine(**versions) -> dict:
    """What a benchmark ran on: platform, CPU count, the first JAX device and versions."""
    return dict(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        device=str(jax.devices()[0]),
        device_kind=jax.devices()[0].device_kind,
        jax=jax.__version__,
        **versions,
    )
