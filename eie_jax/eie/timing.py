"""EIE's cycle counts: the paper's timing model and the reference simulator's ("rtl").

Both run over the broadcast items in increasing column order; the arithmetic is the same
in both (datapath.py), only the cycles differ. n[k, i] is the entries of item i on PE k,
padding included; D = fifo_depth.

paper (ISCA 2016, Sec. III-IV): each broadcast is queued in every PE's FIFO; a PE spends
max(n, 1) cycles on it (one cycle per entry, or the pointer read of an empty slice); the
broadcast stalls while any queue is full:

    t_i    = max(t_{i-1} + 1, max_k s[k, i - D])        (the max over s only when i >= D)
    s[k,i] = max(f[k, i-1], t_i)                         (start once queued and idle)
    f[k,i] = s[k, i] + max(n[k, i], 1)                   (finish)
    pe_cycles[k] = f[k, last]; total = max_k pe_cycles (0 when nothing is broadcast).

rtl (the co-author's cycle-level C++ simulator, when it runs to completion): the items are
the broadcast activations, then one bias item at column Kp = ceil(K/N) * N whose entries
are the layer's nonzero (quantised) biases placed like one more column (none without a
bias). The LNZD reads N columns per cycle: g_i = col_i div N, q_i = col_i mod N.

    s_0 = 1 + g_0;  s_i = s_{i-1} + 1 + (g_i - g_{i-1}) - [q_{i-1} = N-1 and g_i > g_{i-1}]
    s_i = max(s_i, max_k pop[k, i - D])                  (queue stall, when i >= D)
    pop[k,0] = s_0 + 2;  pop[k,i] = max(pop[k,i-1] + max(1, n[k,i-1]), s_i + 2)
    entry e of item i on PE k is written at pop[k,i] + e + 5 if its code is not 0
    t_empty = the bias item's send time before its queue stall
    total = max(last write + 1, t_empty, 9)

Since columns increase, q_{i-1} = N-1 (the last column of its group) implies
g_i > g_{i-1}, so the bracket is [q_{i-1} = N-1]. A slice's last entry is always real
(padding only precedes one), so a nonempty slice's last write is pop + n + 4, and
pop[k, i+1] >= pop[k, i] + n[k, i] makes the last nonempty item's write PE k's last.
In rtl mode pe_cycles[k] = max(PE k's last write + 1, t_empty, 9): the cycle by which
PE k has written its last output and the central unit has sent every item; so
total = max_k pe_cycles in both modes.

Each step takes the item's counts (N,) and whether it is real (`active`; False: a no-op):
the loops below visit broadcasts only and pass True. An rtl step also takes its send
delta s_i - s_{i-1} before the stall, which depends only on the columns, so send_deltas
computes them all before the loop. The smooth surrogate in cost.py runs the same steps
with expected counts, smooth maxima and probabilities for `active`, which blend the
stepped and the unchanged state (it carries the previous group and [q = N-1], blended,
to form its deltas).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

MIN_RTL_CYCLES = 9  # the reference never reports fewer


def history_size(fifo_depth: int) -> int:
    """Static length of the stall-bound history: the next power of two >= fifo_depth.

    Depths that share it share a compiled simulator (fifo_depth itself is traced).
    """
    return max(8, 1 << (int(fifo_depth) - 1).bit_length())


def _blend(active, stepped, carry):
    """`stepped` where `active` (bool), or old + active * (new - old) for a probability."""
    if jnp.issubdtype(jnp.asarray(active).dtype, jnp.bool_):
        return jax.tree.map(lambda new, old: jnp.where(active, new, old), stepped, carry)
    return jax.tree.map(lambda new, old: old + active * (new - old), stepped, carry)


# ---------------------------------------------------------------- paper timing


def initial_timing(num_pes: int, history: int, dtype=jnp.int32):
    return (jnp.zeros(num_pes, dtype), jnp.asarray(-1, dtype), jnp.zeros(history, dtype))


def timing_step(carry, n, active, fifo_depth, work=None, pe_max=None):
    """One broadcast of the paper's recurrence; a no-op where `active` is False.

    carry = (f, t, hist): f (N,) finish times, t the last broadcast time, hist (H,) the
    max start times of the last H broadcasts, most recent first (zeros before any: the
    bound is then t_{i-1} + 1 >= 0 anyway). `work` and `pe_max` replace max(n, 1) and the
    max over PEs (the smooth surrogate in cost.py passes its own).
    """
    f, t, hist = carry
    work = work if work is not None else jnp.maximum(n, 1)
    pe_max = pe_max if pe_max is not None else jnp.max
    t_new = jnp.maximum(t + 1, hist[fifo_depth - 1])
    s = jnp.maximum(f, t_new)
    return _blend(active, (s + work, t_new, jnp.concatenate([pe_max(s)[None], hist[:-1]])), carry)


# ---------------------------------------------------------------- rtl timing


def initial_rtl(num_pes: int, history: int, dtype=jnp.int32):
    """(free, done, s, hist): per PE the cycle it can pop next (pop + max(1, n)) and the
    free cycle after its last nonempty item (last write = done + 4; -5: none yet); the
    last send time; the max pops of the last H items, most recent first.
    """
    zero = jnp.asarray(0, dtype)
    return (
        jnp.zeros(num_pes, dtype),
        jnp.full(num_pes, -5, dtype),
        zero,
        jnp.zeros(history, dtype),
    )


def send_delta(column, prev_column, num_pes):
    """s_i - s_{i-1} before the stall: 1 + (g_i - g_{i-1}) - [q_{i-1} = N-1]; 1 + g_0 for
    the first item (prev_column < 0). Elementwise on arrays."""
    first = prev_column < 0
    g_prev = jnp.where(first, 0, prev_column // num_pes)
    end_prev = jnp.where(first, 0, prev_column % num_pes == num_pes - 1)
    return 1 + column // num_pes - g_prev - end_prev


def send_deltas(columns, active, bias_col, num_pes):
    """(K',) send_delta of every column given the previous active one, and the bias item's.

    Precomputed before the loop, so a step only adds its delta to the last send time.
    """
    columns = jnp.asarray(columns, jnp.int32)
    idx = jnp.arange(columns.shape[0])
    upto = jax.lax.cummax(jnp.where(active, idx, -1))  # last active index <= i
    prev = jnp.concatenate([jnp.full(1, -1, upto.dtype), upto[:-1]])
    prev_col = jnp.where(prev >= 0, columns[jnp.maximum(prev, 0)], -1)
    last = upto[-1] if columns.shape[0] else -1
    last_col = jnp.where(last >= 0, columns[jnp.maximum(last, 0)], -1)
    return send_delta(columns, prev_col, num_pes), send_delta(bias_col, last_col, num_pes)


def _rtl_advance(carry, delta, n, fifo_depth, nonempty, max2, pe_max):
    """The stepped state for an item with send delta `delta` and counts n (N,), and its
    send time before the stall."""
    free, done, s, hist = carry
    sent = s + delta
    s_new = max2(sent, hist[fifo_depth - 1])  # hist is 0 for i < D: no stall
    pop = max2(free, s_new + 2)
    free_new = pop + max2(n, 1)
    if nonempty is None:
        done = jnp.where(n > 0, free_new, done)
    else:  # a probability: done + P(nonempty) (pop + E[n | nonempty] - done)
        done = done + nonempty * (pop - done) + n
    hist = jnp.concatenate([pe_max(pop)[None], hist[:-1]])
    return (free_new, done, s_new, hist), sent


def rtl_step(carry, delta, n, active, fifo_depth, nonempty=None, max2=None, pe_max=None):
    """One item of the rtl recurrence; a no-op where `active` is False.

    `nonempty` (N,), the probability that each slice has an entry, `max2` (an elementwise
    maximum) and `pe_max` (the max over PEs) are the smooth surrogate's replacements.
    """
    max2 = max2 if max2 is not None else jnp.maximum
    pe_max = pe_max if pe_max is not None else jnp.max
    stepped, _ = _rtl_advance(carry, delta, n, fifo_depth, nonempty, max2, pe_max)
    return _blend(active, stepped, carry)


def rtl_finish(carry, bias_delta, bias_counts, fifo_depth, nonempty=None, max2=None, pe_max=None):
    """Runs the bias item and returns pe_cycles (N,) = max(last write + 1, t_empty, 9)."""
    max2 = max2 if max2 is not None else jnp.maximum
    pe_max = pe_max if pe_max is not None else jnp.max
    (_, done, _, _), t_empty = _rtl_advance(
        carry, bias_delta, bias_counts, fifo_depth, nonempty, max2, pe_max
    )
    return max2(done + 5, max2(t_empty, MIN_RTL_CYCLES))


def bias_column(num_cols, num_pes):
    """Kp = ceil(K / N) * N: the bias item's column."""
    return -(-num_cols // num_pes) * num_pes


def column_entries(nonzero, num_pes: int, index_bits: int):
    """(N,) entries per PE, padding included, of one column whose nonzero rows are `nonzero`.

    Row r sits on PE r mod N as local row r // N; a gap of g zero local rows before an
    entry needs g >> index_bits padding entries (encode.py). Traceable: the bias item's
    counts come from the (traced) bias.
    """
    m = nonzero.shape[0]
    rows = -(-m // num_pes)
    nz = jnp.zeros(rows * num_pes, bool).at[:m].set(nonzero).reshape(rows, num_pes).T
    local = jnp.arange(rows)
    at = jnp.where(nz, local, -1)
    # The previous nonzero local row before each row (-1 when none).
    prev = jnp.concatenate([jnp.full((num_pes, 1), -1), jax.lax.cummax(at, axis=1)[:, :-1]], axis=1)
    pads = jnp.where(nz, (local - prev - 1) >> index_bits, 0)
    return jnp.sum(nz + pads, axis=1, dtype=jnp.int32)


# ---------------------------------------------------------------- the loops


def for_each_broadcast(active, body, init, unroll=1):
    """carry = body(j, carry) for every broadcast column j, in increasing order.

    Zero activations are skipped, as the LNZD tree skips them: a table of the next
    broadcast column at or after each column (one reverse cummin; a sort of the columns
    cost a quarter of Alex-6's cycles-only time) lets the loop chase them, once per
    broadcast: a fori_loop with a traced trip count (a scan would step through every
    column). `unroll` broadcasts per iteration (the last num_active % unroll one per
    iteration, so every step is a real broadcast); the cycles-only loops take 4.
    """
    k = active.shape[0]
    if k == 0:
        return init
    cols = jnp.arange(k, dtype=jnp.int32)
    next_col = jnp.append(jax.lax.cummin(jnp.where(active, cols, k), reverse=True), k)
    num_active = jnp.sum(active, dtype=jnp.int32)

    def step(state):
        carry, p = state
        j = next_col[p]
        return body(j, carry), j + 1

    def chunk(_, state):
        for _ in range(unroll):
            state = step(state)
        return state

    state = jax.lax.fori_loop(0, num_active // unroll, chunk, (init, jnp.int32(0)))
    state = jax.lax.fori_loop(0, num_active % unroll, lambda _, s: step(s), state)
    return state[0]


def _busy(counts, active):
    return jnp.sum(jnp.where(active[None, :], counts, 0), axis=1)


@functools.partial(jax.jit, static_argnames=("history",))
def cycles_from_counts(counts, active, fifo_depth, *, history):
    """Paper timing: per-PE finish cycles and busy entries from entry counts alone.

    counts: (N, K) entries per PE and column; active: (K,) bool, broadcast columns;
    fifo_depth: int, may be traced (<= history). Returns (pe_cycles, pe_busy).
    """
    counts_by_column = counts.T.astype(jnp.int32)

    def body(j, timing):
        return step("paper", timing, j, counts_by_column[j], fifo_depth)

    init = initial_timing(counts.shape[0], history)
    f, _, _ = for_each_broadcast(active, body, init, unroll=4)
    return f, _busy(counts, active)


class Track(NamedTuple):
    """Design points one after another on T tracks of S steps, N PEs each (`packed_cycles`).

    counts (S, N, T), any integer dtype: entries per PE of the point on track t at step i
    (PEs past a point's own N hold 0); depth (S, T): that point's FIFO depth (1 on free
    steps); first (S, T): the point's first broadcast; ends (E,): the steps at which some
    point of the group has its last broadcast, increasing.
    """

    counts: jax.Array
    depth: jax.Array
    first: jax.Array
    ends: jax.Array


@functools.partial(jax.jit, static_argnames=("history",))
def packed_cycles(tracks, *, history):
    """Paper timing of design points packed on tracks, as sequences are packed in training
    batches: per group, pe_cycles (E, N, T) after each of its `ends` on every track.

    tracks: a tuple of `Track` groups (each its own N, T and E). Every group steps through
    the same S steps in one loop, so points of different lengths and PE counts share a
    compilation without each being padded to the largest. The point that ends on track t
    at ends[e] has pe_cycles [e, :, t].
    A point starts where the one before it on its track ended: the recurrence is the same
    shifted by that point's finish time b = max_k f, so its first broadcast goes at
    t = b (not 0), its FIFOs start idle (f <= b), and every stall bound left in the ring
    from the points before it is <= b, as the zeros of an empty history are <= 0. Its
    pe_cycles are f - b after its last broadcast; a step that ends no point writes them to
    a discarded row. Steps are PE-major (N, T) slices: the max over PEs is then a
    vectorised max of rows. The loop is not unrolled: on the CPU unrolling gains a few
    per cent and doubles the compilation per unrolled step.
    The ring holds max_k s[k, i] = max(max_k f[k, i-1], t_i) of the last `history` steps.
    """
    steps = tracks[0].counts.shape[0]

    def init(track):
        _, n, t = track.counts.shape
        ends = track.ends.shape[0]
        zero = jnp.zeros(t, jnp.int32)
        ring = jnp.zeros((history, t), jnp.int32)
        out = jnp.zeros((ends + 1, n, t), jnp.int32)
        return jnp.zeros((n, t), jnp.int32), zero - 1, zero, zero, ring, out

    # The output row each step writes: its index in ends, or the discarded last row.
    rows = [
        jnp.full(steps, tr.ends.shape[0], jnp.int32)
        .at[tr.ends]
        .set(jnp.arange(tr.ends.shape[0], dtype=jnp.int32))
        for tr in tracks
    ]

    def one(i, track, row, carry):
        f, t, top, base, ring, out = carry  # top: max_k f; base: this point's start
        first = track.first[i]
        t, base = jnp.where(first, top - 1, t), jnp.where(first, top, base)
        lanes = jnp.arange(t.shape[0])
        t = jnp.maximum(t + 1, ring[(i - track.depth[i]) % history, lanes])
        ring = jax.lax.dynamic_update_index_in_dim(ring, jnp.maximum(top, t), i % history, 0)
        f = jnp.maximum(f, t[None, :]) + jnp.maximum(track.counts[i], 1).astype(jnp.int32)
        out = jax.lax.dynamic_update_index_in_dim(out, f - base[None, :], row[i], 0)
        return f, t, jnp.max(f, axis=0), base, ring, out

    def step(i, carry):
        return tuple(one(i, tr, row, cg) for tr, row, cg in zip(tracks, rows, carry, strict=True))

    carry = jax.lax.fori_loop(0, steps, step, tuple(init(tr) for tr in tracks))
    return tuple(c[-1][:-1] for c in carry)


@functools.partial(jax.jit, static_argnames=("history",))
def rtl_cycles_from_counts(
    counts, active, fifo_depth, columns, bias_counts, bias_col, num_pes, *, history
):
    """rtl timing: (pe_cycles, pe_busy) from entry counts, as cycles_from_counts.

    counts (N, K') and active (K',) as in cycles_from_counts; besides those the rtl
    timing needs where each item sits and the bias item:
      columns: (K',) int, the layer's column index of each of counts' columns (arange(K)
        for a whole layer; the original indices when counts holds broadcast columns only);
      bias_counts: (N,) entries of the bias item per PE (column_entries of the nonzero
        quantised biases; zeros without a bias);
      bias_col: the bias item's column, bias_column(K, num_pes) for the layer's K;
      num_pes: the real N (may be traced; PEs of counts beyond it must hold zeros: they
        never pop later than a real PE, so they change nothing).
    pe_busy counts the activation items' entries only, as in paper mode.
    """
    counts_by_column = counts.T.astype(jnp.int32)
    deltas, bias_delta = send_deltas(columns, active, bias_col, num_pes)

    def body(j, timing):
        return step("rtl", timing, j, counts_by_column[j], fifo_depth, deltas)

    init = initial_rtl(counts.shape[0], history)
    carry = for_each_broadcast(active, body, init, unroll=4)
    pe_cycles = rtl_finish(carry, bias_delta, bias_counts.astype(jnp.int32), fifo_depth)
    return pe_cycles, _busy(counts, active)


# ---------------------------------------------------------------- dispatch by cfg.timing


def start(timing: str, num_pes: int, history: int):
    return initial_rtl(num_pes, history) if timing == "rtl" else initial_timing(num_pes, history)


def step(timing: str, carry, j, n, fifo_depth, deltas=None):
    """One broadcast of column j; rtl needs send_deltas' per-column deltas."""
    if timing == "rtl":
        return rtl_step(carry, deltas[j], n, True, fifo_depth)
    return timing_step(carry, n, True, fifo_depth)


def finish(timing: str, carry, fifo_depth, bias_counts=None, bias_delta=None):
    """pe_cycles (N,) from the loop's final carry (rtl: after the bias item)."""
    if timing == "rtl":
        return rtl_finish(carry, bias_delta, bias_counts, fifo_depth)
    return carry[0]
