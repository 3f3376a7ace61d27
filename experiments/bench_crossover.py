"""Where does sparsity pay off? Software sparse matvec vs dense, and the EIE model.

    python -m experiments.bench_crossover --config=configs/bench_crossover.py \
        --workdir=runs/crossover

At batch 1 on a size x size matrix of uniformly random nonzeros, for each density: the
median wall time (after compilation; the four interleaved round by round) of a jitted
dense matvec, scipy CSR, and jax.experimental.sparse BCOO and BCSR (jitted); each sparse
format's speedup over dense;
and the EIE model's speedup at that density over its own 100 %-dense cycles (every
activation nonzero, as the software gets no activation sparsity either; paper and rtl
timing). Prints a table and the density at which each curve crosses 1x (log-linear
interpolation), writes WORKDIR/crossover.{json,md} and crossover_speedup_vs_density.png.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.sparse
from absl import flags
from jax.experimental import sparse
from ml_collections import config_flags

from eie_jax import eie
from eie_jax.eie import benchmarks
from eie_jax.utils import cli as errors
from eie_jax.utils import plotting, schema
from eie_jax.utils import workdir as workdirs
from eie_jax.utils.timer import interleaved_medians
from eie_jax.utils.timer import machine as ran_on

_CONFIG = config_flags.DEFINE_config_file("config", None, errors.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and the figure go.")
flags.mark_flags_as_required(["config", "workdir"])


_matvec = jax.jit(lambda w, x: w @ x)


def software_times(w, x, repeats):
    """Seconds per batch-1 matvec: dense (jitted), scipy CSR, BCOO, BCSR (jitted)."""
    csr = scipy.sparse.csr_matrix(w)
    x_np = np.asarray(x)
    wd, xd = jnp.asarray(w), jnp.asarray(x)
    bcoo = sparse.BCOO.fromdense(wd)
    bcsr = sparse.BCSR.fromdense(wd)
    fns = {
        "dense": lambda: _matvec(wd, xd),
        "scipy CSR": lambda: csr @ x_np,
        "BCOO": lambda: _matvec(bcoo, xd),
        "BCSR": lambda: _matvec(bcsr, xd),
    }
    return interleaved_medians(fns, repeats)


def eie_cycles(mask, cfg):
    """EIE's total cycles for every activation nonzero, per timing."""
    counts = jnp.asarray(eie.column_counts(mask, cfg.num_pes, cfg.index_bits))
    k = mask.shape[1]
    active = jnp.ones(k, bool)
    history = eie.history_size(cfg.fifo_depth)
    paper, _ = eie.cycles_from_counts(counts, active, cfg.fifo_depth, history=history)
    rtl, _ = eie.rtl_cycles_from_counts(
        counts,
        active,
        cfg.fifo_depth,
        jnp.arange(k),
        jnp.zeros(cfg.num_pes, jnp.int32),
        eie.bias_column(k, cfg.num_pes),
        cfg.num_pes,
        history=history,
    )
    return {"paper": int(paper.max()), "rtl": int(rtl.max())}


def crossover(densities, speedups):
    """The density where speedup crosses 1x (log-linear interpolation); None if it never
    does inside the range, with the side it stays on."""
    d, s = np.log(np.asarray(densities)), np.log(np.asarray(speedups))
    for i in range(len(d) - 1):
        if (s[i] >= 0) != (s[i + 1] >= 0):
            return float(np.exp(d[i] + (d[i + 1] - d[i]) * s[i] / (s[i] - s[i + 1])))
    return None


def run(config, workdir):
    schema.check(config, benchmarks.CROSSOVER)
    with workdirs.session(workdir, "bench_crossover", config):
        return _run(config, workdir)


def _run(config, workdir):
    cfg = eie.EIEConfig(**config.eie)
    rng = np.random.default_rng(config.seed)
    n = config.size
    x = rng.standard_normal(n).astype(np.float32)
    dense_eie = eie_cycles(np.ones((n, n), np.uint8), cfg)
    rows = []
    for density in config.densities:
        mask = rng.random((n, n), dtype=np.float32) < density
        w = np.where(mask, rng.standard_normal((n, n), dtype=np.float32), 0.0)
        times = software_times(w, x, config.repeats)
        cycles = eie_cycles(mask.astype(np.uint8), cfg)
        row = dict(density=density, seconds=times, eie_cycles=cycles)
        row["speedup"] = {name: times["dense"] / t for name, t in times.items() if name != "dense"}
        for mode in ("paper", "rtl"):
            row["speedup"][f"EIE ({mode} timing)"] = dense_eie[mode] / cycles[mode]
        rows.append(row)
        print(
            f"density {density:.3f}: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in row["speedup"].items())
        )
    names = list(rows[0]["speedup"])
    curves = {name: [r["speedup"][name] for r in rows] for name in names}
    crossings = {name: crossover(config.densities, curves[name]) for name in names}
    percent = [100 * d for d in config.densities]
    plotting.line_plot(
        os.path.join(workdir, "crossover_speedup_vs_density.png"),
        percent,
        {**curves, "dense (1x)": [1.0] * len(percent)},
        xlabel="weight density (%)",
        ylabel="speedup over dense",
        title=f"Sparse vs dense matvec, {n}x{n}, batch 1 (EIE: {cfg.num_pes} PEs)",
        logx=True,
        logy=True,
    )
    machine = ran_on(scipy=scipy.__version__)
    md = to_markdown(rows, names, crossings, machine)
    with open(os.path.join(workdir, "crossover.md"), "w") as f:
        f.write(md)
    with open(os.path.join(workdir, "crossover.json"), "w") as f:
        json.dump(
            dict(config=config.to_dict(), machine=machine, rows=rows, crossings=crossings,
                 dense_eie_cycles=dense_eie),
            f, indent=2,
        )  # fmt: skip
    print(md)


def to_markdown(rows, names, crossings, machine):
    head = (
        "| density | dense ms | CSR ms | BCOO ms | BCSR ms | "
        + " | ".join(f"{name} speedup" for name in names)
        + " |\n" + "|---" * (5 + len(names)) + "|\n"
    )  # fmt: skip
    body = "".join(
        f"| {100 * r['density']:.1f} % | "
        + " | ".join(f"{1e3 * r['seconds'][k]:.3f}" for k in ("dense", "scipy CSR", "BCOO", "BCSR"))
        + " | "
        + " | ".join(f"{r['speedup'][name]:.2f}" for name in names)
        + " |\n"
        for r in rows
    )

    def where(name, d):
        if d is not None:
            return f"crosses 1x at {100 * d:.2f} % density"
        side = "above" if rows[0]["speedup"][name] > 1 else "below"
        return f"stays {side} 1x over the whole range"

    cross = "".join(f"- {name}: {where(name, d)}\n" for name, d in crossings.items())
    return head + body + "\n" + cross + f"\nmachine: {machine}\n"


def main(argv):
    del argv
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    errors.run(main, validate=lambda: schema.check(_CONFIG.value, benchmarks.CROSSOVER))
