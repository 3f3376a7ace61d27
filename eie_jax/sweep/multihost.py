"""One sweep over several processes and hosts, on JAX's multi-controller runtime.

Every process runs the same command; `jax.distributed.initialize` connects them (process
0 hosts the coordinator) and then `jax.devices()` lists every process's devices:

    python -m experiments.sweep --config=... --workdir=/shared/dir \\
        --coordinator_address=host0:1234 --num_processes=2 --process_id=0   # on host0
    ... --process_id=1                                                      # on host1

Under SLURM (`srun`) or Open MPI (`mpirun`) the three values come from the environment,
as `jax.distributed.initialize()` reads them. The sweep runner then:
- training points: process i trains the pending points i, i + P, i + 2P, ... (pending
  points in index order, P processes), each in a child interpreter whose JAX runtime is
  its own (`runners._trainer`), and appends them to its own results.<i>.jsonl;
- EIE design points: one batch sharded over every global device (a Mesh across processes),
  the results gathered and written by process 0.
`barrier` keeps every process at the same step: all have read the finished points before
any writes one, and none returns before all are done.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding

from eie_jax.utils.cli import UserError

# Environment variables that say the process is one of several, as jax.distributed reads
# them (JAX itself, SLURM inside an srun step, Open MPI): name -> the process count's variable.
_CLUSTER_COUNT = {
    "SLURM_STEP_NODELIST": "SLURM_NTASKS",
    "OMPI_COMM_WORLD_SIZE": "OMPI_COMM_WORLD_SIZE",
}


def cluster_detected() -> bool:
    """Whether the environment launched this process as one of several (SLURM, Open MPI)
    or names a coordinator (JAX_COORDINATOR_ADDRESS)."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    for present, count in _CLUSTER_COUNT.items():
        if present in os.environ and int(os.environ.get(count, "1") or 1) > 1:
            return True
    return False


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Connects this process to the others with jax.distributed; False when alone.

    Values left None come from the environment (jax.distributed.initialize's cluster
    detection). Nothing is initialised when no value is given and no cluster is detected.
    Raises UserError for a process id outside [0, num_processes) or a missing value.
    """
    given = (coordinator_address, num_processes, process_id)
    if all(v is None for v in given) and not cluster_detected():
        return False
    if num_processes is not None and num_processes < 1:
        raise UserError(f"--num_processes={num_processes}: must be >= 1")
    if process_id is not None and num_processes is not None:
        if not 0 <= process_id < num_processes:
            raise UserError(
                f"--process_id={process_id}: must be in [0, --num_processes={num_processes})"
            )
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    except ValueError as e:  # a value neither given nor found in the environment
        raise UserError(
            f"jax.distributed.initialize: {e}; give --coordinator_address, --num_processes "
            "and --process_id (or launch under SLURM / Open MPI)"
        ) from e
    return True


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (nothing when alone)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def share(items: Sequence, process: int | None = None, processes: int | None = None) -> list:
    """This process's part of `items`: items[process::processes], a deterministic split."""
    process = jax.process_index() if process is None else process
    processes = jax.process_count() if processes is None else processes
    return list(items[process::processes])


def put(host: np.ndarray, sharding: Sharding) -> jax.Array:
    """A global array from a host array every process holds in full (each puts its shards).

    In one process the devices may use the host memory in place (no copy where it is
    aligned, as `host_zeros` makes it): the caller must not change `host` afterwards.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(host, sharding, may_alias=True)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def host_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.zeros whose data is 64-byte aligned, which `put` hands a CPU device without a copy
    (np.zeros aligns large arrays to 16 bytes; XLA copies those, at about 1.5 GB/s)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    return raw[offset : offset + size].view(dtype).reshape(shape)


def to_host(array: jax.Array) -> np.ndarray:
    """The whole array on the host of every process, gathered across processes if need be."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
