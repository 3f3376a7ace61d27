"""Learned masks' two pieces: a top-k over scores that is fast on a CPU, and the
straight-through estimator that lets gradients reach the scores (Bengio et al. 2013;
Ramanujan et al. 2020). Used by `layers.MaskedLayer` in its "scores" phase.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_jvp
def hard_with_identity_grad(scores, hard):
    return hard


@hard_with_identity_grad.defjvp
def _hard_with_identity_grad_jvp(primals, tangents):
    # Straight-through: the forward value is the hard 0/1 mask, the derivative w.r.t. the
    # scores is the identity (Bengio et al. 2013; Ramanujan et al. 2020 use it for scores).
    scores, hard = primals
    d_scores, _ = tangents
    return hard, d_scores


def _sortable_key(x):
    """uint32 keys whose unsigned order is the order of the float32 values x."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    sign = jnp.uint32(0x80000000)
    return jnp.where(bits & sign, ~bits, bits | sign)


def topk(scores, allowed, keep_fraction):
    """(mask, threshold): the round(keep_fraction * #allowed) highest allowed scores, ties
    broken by position (earlier first), and a score between the last kept and the first
    dropped one (held constant in the gradient).

    The k-th largest score is found by a 32-step bisection over the float's bit pattern,
    which costs 32 counting passes: a full sort of a 235,200-entry layer is ~20x slower on
    a CPU, and this runs at every training step of the scores phase.
    """
    flat = jnp.reshape(scores, -1)
    ok = (jnp.reshape(allowed, -1) > 0) & jnp.isfinite(flat)
    key = _sortable_key(flat)
    k = jnp.round(keep_fraction * jnp.sum(ok)).astype(jnp.int32)

    def bisect(_, bounds):  # the k-th largest key lies in [lo, hi]
        lo, hi = bounds
        mid = lo + (hi - lo) // 2 + (hi - lo) % 2
        enough = jnp.sum(ok & (key >= mid)) >= k
        return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid - 1)

    kth, _ = jax.lax.fori_loop(0, 32, bisect, (jnp.uint32(0), jnp.uint32(0xFFFFFFFF)))
    above = ok & (key > kth)
    ties = ok & (key == kth)
    kept = above | (ties & (jnp.cumsum(ties) <= k - jnp.sum(above)))
    kept = kept & (k > 0)
    last_kept = jnp.min(jnp.where(kept, flat, jnp.inf))
    first_dropped = jnp.max(jnp.where(ok & ~kept, flat, -jnp.inf))
    threshold = jnp.where(
        jnp.isfinite(first_dropped),
        jnp.where(jnp.isfinite(last_kept), (last_kept + first_dropped) / 2, first_dropped + 1.0),
        last_kept - 1.0,  # every allowed score is kept
    )
    mask = kept.astype(scores.dtype).reshape(scores.shape)
    return mask, jax.lax.stop_gradient(threshold)
