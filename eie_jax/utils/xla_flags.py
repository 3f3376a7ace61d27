"""The one XLA option eie-jax sets: small loops compiled into one CPU kernel.

The cycle loops (`eie.timing`) take one tiny step per broadcast, a few vectors of N
integers. XLA's CPU runtime runs every operation of a loop body as a task of its own, so
such a loop costs a fixed overhead per broadcast whatever it computes. XLA compiles a
while loop whose body touches fewer than `xla_cpu_small_while_loop_byte_threshold` bytes
per iteration into a single kernel instead. Its default, 1 KiB, leaves out all but the
tiniest cycle loops; SMALL_LOOP_BYTES takes in the cycles-only loops of 64 to 1024 PEs. A
larger threshold takes in more (the sweeps' packed loop) and with it loops of training,
whose float results could then change in their last bits; set it in XLA_FLAGS to try
one. The times, with and without: docs/benchmarks.md (Sweep speed).

XLA reads XLA_FLAGS once, when JAX starts its backends, so `apply` runs when eie_jax is
imported: import it before running any JAX computation (the option then holds for the
whole process and the processes it starts). A threshold already in XLA_FLAGS is kept
(`xla_cpu_small_while_loop_byte_threshold=1024` there restores XLA's default).
"""

from __future__ import annotations

import os

SMALL_LOOP_BYTES = 1 << 16
_EXTRA = "--xla_backend_extra_options="
_KEY = "xla_cpu_small_while_loop_byte_threshold"


def with_small_loop_kernels(flags: str, threshold: int = SMALL_LOOP_BYTES) -> str:
    """XLA_FLAGS `flags` with the small-loop threshold added (a value already set stays)."""
    if _KEY in flags:
        return flags
    option = f"{_KEY}={threshold}"
    parts = flags.split()
    for i, part in enumerate(parts):
        if part.startswith(_EXTRA):  # the extra options are one comma-separated flag
            parts[i] = f"{part},{option}" if part != _EXTRA else part + option
            return " ".join(parts)
    return " ".join([*parts, _EXTRA + option])


def apply() -> None:
    """Add the option to this process's XLA_FLAGS."""
    os.environ["XLA_FLAGS"] = with_small_loop_kernels(os.environ.get("XLA_FLAGS", ""))
