"""GPTQ and AWQ at int4 / int3 in groups of inputs, on qwix (Google's JAX quantisation).

AWQ (Lin et al. 2024) is `qwix.contrib.awq_core.quantize_weight` as is: a grid search of
per-input-channel scales act_scale**alpha that minimise the activation-weighted error of
the group quantisation of W * scales; W_hat = dequantize(Q) / scales.

GPTQ (Frantar et al. 2023) is qwix's algorithm (`qwix.contrib.gptq_core.quantize_weight`)
step for step, with qwix's `find_params` and `quantize` for every group and column, but its
column loop is a `lax.fori_loop` here, because qwix's own loop cannot serve this study:
  - it is a Python loop over the K columns (eager: 93 s for one 256 x 1024 matrix on this
    machine; under jax.jit it unrolls and compiled for 86 s for a 256 x 256 one);
  - it allocates the codes as `zeros_like(W, dtype=qtype)`, which fails for qwix's 'int3'
    ("data type 'int3' not understood"), so it has no 3-bit GPTQ.
tests/studies/lm/test_methods.py checks that this loop gives qwix's result at int4.

Both take W in EIE's layout (M outputs, K inputs) and the layer's calibration inputs X
(N, K) (lm.calibration_inputs: 128 training windows through the dense model). Scales are
symmetric (qwix's absmax calibration: levels -2**(b-1) .. 2**(b-1) - 1), one per output
row and group of `group` inputs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from qwix._src.core import qarray
from qwix.contrib import awq_core, gptq_core

QTYPES = {4: jnp.int4, 3: "int3", 2: "int2", 8: jnp.int8}


def how(bits: int, group: int) -> qarray.HowToQuantize:
    """qwix's recipe: one symmetric scale per output row and group of inputs."""
    return qarray.HowToQuantize(qtype=QTYPES[bits], channelwise_axes=(0,), tiled_axes={1: group})


def awq(w, x, bits: int, group: int = 128):
    """(w_hat (M, K), per-input scales (K,)) by qwix's AWQ."""
    w = jnp.asarray(w, jnp.float32)
    q, scales = awq_core.quantize_weight(
        w, awq_core.compute_act_scale(jnp.asarray(x)), how(bits, group)
    )
    return qarray.dequantize(q) / scales, scales.reshape(-1)


def hessian(x):
    """GPTQ's H = X^T X over the calibration inputs X (N, K)."""
    x = jnp.asarray(x, jnp.float32)
    return gptq_core.compute_hessian(x.T)


def gptq(w, h, bits: int, group: int = 128, percdamp: float = 0.01):
    """W_hat (M, K) of GPTQ with qwix's parameters; blocks of `group` columns."""
    w = jnp.asarray(w, jnp.float32)
    if w.shape[1] % group:
        raise ValueError(f"group={group}: must divide the {w.shape[1]} inputs")
    return _gptq(w, jnp.asarray(h, jnp.float32), bits, group, percdamp)


@functools.partial(jax.jit, static_argnames=("bits", "group"))
def _gptq(W, H, bits, group, percdamp):
    rows, columns = W.shape
    qtype = QTYPES[bits]
    per_row = qarray.HowToQuantize(qtype=qtype, channelwise_axes=(0,))
    # Dead inputs, damping and the upper Cholesky factor of H^-1, as qwix does.
    h_diag = jnp.diag(H)
    dead = h_diag == 0
    H = jnp.where(dead & jnp.eye(columns, dtype=bool), 1.0, H)
    W = jnp.where(dead, 0.0, W)
    H = H + percdamp * jnp.mean(h_diag) * jnp.eye(columns)
    hinv = gptq_core.cholesky_inverse(jnp.linalg.cholesky(H))
    hinv = jnp.linalg.cholesky(hinv, upper=True)
    col = jnp.arange(columns)

    def block(b, state):
        W, W_hat = state
        i1 = b * group
        W1 = jax.lax.dynamic_slice_in_dim(W, i1, group, axis=1)
        H1 = jax.lax.dynamic_slice(hinv, (i1, i1), (group, group))
        scale, zero = gptq_core.find_params(W1, per_row)  # group == block: one per block
        scale = scale.squeeze(1)
        zero = None if zero is None else zero.squeeze(1)

        def column(i, inner):
            W1, dq1, err1 = inner
            w = W1[:, i]
            _, dq = gptq_core.quantize(w, qtype, scale, zero)
            err = (w - dq) / H1[i, i]
            # H1 is upper triangular: row i touches columns i.. only, as in qwix.
            W1 = W1 - jnp.outer(err, H1[i])
            return W1, dq1.at[:, i].set(dq), err1.at[:, i].set(err)

        zeros = jnp.zeros_like(W1)
        _, dq1, err1 = jax.lax.fori_loop(0, group, column, (W1, zeros, zeros))
        rows_h = jax.lax.dynamic_slice_in_dim(hinv, i1, group, axis=0)
        W = W - jnp.where(col[None, :] >= i1 + group, err1 @ rows_h, 0.0)
        W_hat = jax.lax.dynamic_update_slice_in_dim(W_hat, dq1, i1, axis=1)
        return W, W_hat

    _, W_hat = jax.lax.fori_loop(0, columns // group, block, (W, jnp.zeros_like(W)))
    return W_hat
