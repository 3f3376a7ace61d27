"""The XLA option eie_jax sets on import: small loops compiled into one CPU kernel."""

import os
import subprocess
import sys
import textwrap

import pytest

from eie_jax.utils import xla_flags
from tests.helpers import ROOT

OPTION = "xla_cpu_small_while_loop_byte_threshold"
SMALL = f"{OPTION}={xla_flags.SMALL_LOOP_BYTES}"  # the option eie_jax adds


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("", f"--xla_backend_extra_options={SMALL}"),
        (
            "--xla_force_host_platform_device_count=8",
            f"--xla_force_host_platform_device_count=8 --xla_backend_extra_options={SMALL}",
        ),
        (  # the extra options are one comma-separated flag: joined, not repeated
            "--xla_backend_extra_options=a=1 --xla_dump_to=/tmp/x",
            f"--xla_backend_extra_options=a=1,{SMALL} --xla_dump_to=/tmp/x",
        ),
        (
            f"--xla_backend_extra_options={OPTION}=1024",
            f"--xla_backend_extra_options={OPTION}=1024",
        ),
    ],
)
def test_option_joins_the_users_xla_flags(flags, expected):
    assert xla_flags.with_small_loop_kernels(flags) == expected


def _cycle_loop_is_one_kernel(env_flags):
    """Compile eie.cycles_from_counts (64 PEs) in a fresh process; is its loop one kernel?"""
    code = textwrap.dedent(
        """
        import eie_jax
        import jax.numpy as jnp
        from eie_jax import eie
        counts = jnp.ones((64, 300), jnp.int32)
        active = jnp.ones(300, bool)
        compiled = eie.cycles_from_counts.lower(counts, active, 8, history=8).compile()
        print("xla_cpu_small_call" in compiled.as_text())
        """
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    if env_flags is not None:
        env["XLA_FLAGS"] = env_flags
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_importing_eie_jax_compiles_the_cycle_loop_into_one_kernel():
    assert _cycle_loop_is_one_kernel(None)
    # The user's own setting wins: XLA's default threshold leaves the loop as tasks.
    assert not _cycle_loop_is_one_kernel(f"--xla_backend_extra_options={OPTION}=1024")
