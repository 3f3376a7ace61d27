"""A differentiable surrogate of EIE's cycle count, for use as a training loss.

`expected_cycles` runs the timing recurrence of timing.py (cfg.timing: "paper" or "rtl")
on *expected* work: each weight survives with probability keep_prob and each activation
is broadcast with probability act_prob. Expected entries per PE and column count real
entries and the expected padding; every max becomes a log-sum-exp maximum of width
`temperature`; a broadcast with probability p blends the stepped and the unchanged state.
The rtl timing also needs the probability that a slice is nonempty (its last write moves
to pop + E[n | nonempty] + 4 with that probability) and the bias item (bias_prob).
With 0/1 probabilities and temperature 0 every step is the hardware's, so the result is
exactly simulate()'s total_cycles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from eie_jax.eie import timing
from eie_jax.eie.config import EIEConfig


def smooth_max(x, temperature, axis=None):
    """temperature * logsumexp(x / temperature); the plain max at temperature 0."""
    safe = jnp.where(temperature > 0, temperature, 1.0)
    soft = safe * jax.nn.logsumexp(x / safe, axis=axis)
    return jnp.where(temperature > 0, soft, jnp.max(x, axis=axis))


def _per_pe(keep_prob, num_pes: int):
    """(M, K) -> (N, R, K): PE, local row, column (rows past M never keep)."""
    m, k = keep_prob.shape
    rows = -(-m // num_pes)
    q = jnp.zeros((rows * num_pes, k), keep_prob.dtype).at[:m].set(keep_prob)
    return q.reshape(rows, num_pes, k).transpose(1, 0, 2)


def nonempty_prob(keep_prob, num_pes: int):
    """(N, K) probability that PE k's slice of column j has an entry."""
    return 1.0 - jnp.prod(1.0 - _per_pe(keep_prob, num_pes), axis=1)


def expected_entries(keep_prob, num_pes: int, index_bits: int):
    """(N, K) expected entries per PE and column, expected padding included.

    A gap of g zero rows before an entry needs floor(g / 2**b) padding entries, and
    floor(g / G) = sum_{m >= 1} [the G*m rows just above the entry are all zero]. So
    E[padding] = sum_rows q[r] * sum_m prod_{d=1}^{G m} (1 - q[r - d]) over windows that
    lie inside the PE's rows, exact for independent keeps (and for 0/1 inputs).
    """
    q = _per_pe(keep_prob, num_pes)  # (N, R, K): PE, local row, column
    rows = q.shape[1]
    span = 1 << index_bits
    miss = 1.0 - q

    def shifted(a, d):  # a[:, r - d, :], zero-filled above row 0
        return jnp.pad(a, ((0, 0), (d, 0), (0, 0)))[:, :rows, :]

    # all_zero[r] = prod_{d=1..G} (1 - q[r - d]); a window reaching above row 0 is invalid.
    all_zero = jnp.ones_like(q)
    for d in range(1, span + 1):
        all_zero = all_zero * shifted(miss, d)
    valid = (jnp.arange(rows) >= span)[None, :, None]
    window = jnp.where(valid, all_zero, 0.0)
    padding = jnp.zeros_like(q)
    for blocks in range(1, (rows - 1) // span + 1):
        padding = padding + window
        # Extend every window by one more block of G rows further up.
        window = window * shifted(all_zero, span * blocks)
        window = jnp.where((jnp.arange(rows) >= span * (blocks + 1))[None, :, None], window, 0)
    return jnp.sum(q * (1.0 + padding), axis=1)


def expected_cycles(keep_prob, act_prob, cfg: EIEConfig, temperature: float = 0.0, bias_prob=None):
    """Differentiable expected total cycles of a layer on EIE, in cfg.timing's model.

    Args:
      keep_prob: (M, K) probability that each weight is kept, in [0, 1].
      act_prob: (K,) probability that each input activation is nonzero, in [0, 1].
      cfg: the design point (num_pes, fifo_depth, index_bits and timing are used).
      temperature: width of the smooth maxima in cycles; 0 gives the hard maxima.
      bias_prob: (M,) probability that each bias is nonzero (rtl timing only: the bias
        item's entries); None: no bias.
    """
    dtype = jnp.result_type(float)  # float64 under jax.enable_x64, else float32
    keep_prob = jnp.asarray(keep_prob, dtype)
    act_prob = jnp.asarray(act_prob, dtype)
    if keep_prob.ndim != 2 or act_prob.shape != (keep_prob.shape[1],):
        raise ValueError(
            f"keep_prob (M, K) and act_prob (K,) must agree: got {keep_prob.shape} and "
            f"{act_prob.shape}"
        )
    static = dict(
        num_pes=cfg.num_pes,
        index_bits=cfg.index_bits,
        history=timing.history_size(cfg.fifo_depth),
    )
    temperature = jnp.asarray(temperature, dtype)
    if cfg.timing == "paper":
        return _expected_cycles(keep_prob, act_prob, temperature, cfg.fifo_depth, **static)
    m = keep_prob.shape[0]
    bias_prob = jnp.zeros(m, dtype) if bias_prob is None else jnp.asarray(bias_prob, dtype)
    if bias_prob.shape != (m,):
        raise ValueError(f"bias_prob: expected shape ({m},), got {bias_prob.shape}")
    return _expected_rtl_cycles(
        keep_prob, act_prob, bias_prob, temperature, cfg.fifo_depth, **static
    )


@jax.jit(static_argnames=("num_pes", "index_bits", "history"))
def _expected_cycles(keep_prob, act_prob, temperature, fifo_depth, *, num_pes, index_bits, history):
    counts = expected_entries(keep_prob, num_pes, index_bits)

    def step(carry, xs):
        n, p = xs
        work = smooth_max(jnp.stack([n, jnp.ones_like(n)]), temperature, axis=0)
        pe_max = lambda s: smooth_max(s, temperature)
        return timing.timing_step(carry, n, p, fifo_depth, work=work, pe_max=pe_max), None

    init = timing.initial_timing(num_pes, history, counts.dtype)
    (f, _, _), _ = jax.lax.scan(step, init, (counts.T, act_prob))
    # Nothing broadcast leaves f at 0, as in the hardware.
    return smooth_max(f, temperature)


@jax.jit(static_argnames=("num_pes", "index_bits", "history"))
def _expected_rtl_cycles(
    keep_prob, act_prob, bias_prob, temperature, fifo_depth, *, num_pes, index_bits, history
):
    counts = expected_entries(keep_prob, num_pes, index_bits)
    nonempty = nonempty_prob(keep_prob, num_pes)
    smooth = dict(
        max2=lambda a, b: smooth_max(jnp.stack(jnp.broadcast_arrays(a, b)), temperature, 0),
        pe_max=lambda s: smooth_max(s, temperature),
    )

    def step(carry, xs):
        # (g, end): the group and [q = N-1] of the previous broadcast, blended by its
        # probability (0 before any, so that s_0 = 1 + g_0).
        clock, g_prev, end_prev = carry
        column, n, ne, p = xs
        g, end = column // num_pes, column % num_pes == num_pes - 1
        delta = 1 + g - g_prev - end_prev
        clock = timing.rtl_step(clock, delta, n, p, fifo_depth, ne, **smooth)
        return (clock, g_prev + p * (g - g_prev), end_prev + p * (end - end_prev)), None

    k = keep_prob.shape[1]
    zero = jnp.zeros((), counts.dtype)
    init = (timing.initial_rtl(num_pes, history, counts.dtype), zero, zero)
    columns = jnp.arange(k)
    (clock, g_prev, end_prev), _ = jax.lax.scan(
        step, init, (columns, counts.T, nonempty.T, act_prob)
    )
    bias = bias_prob[:, None]
    pe_cycles = timing.rtl_finish(
        clock,
        1 + timing.bias_column(k, num_pes) // num_pes - g_prev - end_prev,
        expected_entries(bias, num_pes, index_bits)[:, 0],
        fifo_depth,
        nonempty_prob(bias, num_pes)[:, 0],
        **smooth,
    )
    return smooth_max(pe_cycles, temperature)
