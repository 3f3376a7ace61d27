"""Linear integer groups (round to nearest), the weight formats of LLM engines.

A matrix W (M outputs, K inputs; EIE's layout, `layers.to_hardware(kernel)`) is cut along
its inputs into groups of `group` weights (group = K: one scale per output channel); each
group g of a row has its own scale s (and zero z when asymmetric):

  symmetric:  q_max = 2**(b-1) - 1,  s = max|w| / q_max,
              q = clip(round(w / s), -q_max, q_max),          w_hat = q * s
              (share.linear_quantize: zero exact, 2**b - 1 levels)
  asymmetric: lo = min(min w, 0), hi = max(max w, 0)  (GPTQ's find_params: 0 is a level)
              s = (hi - lo) / (2**b - 1),  z = clip(round(-lo / s), 0, 2**b - 1),
              q = clip(round(w / s) + z, 0, 2**b - 1),        w_hat = (q - z) * s

An all-zero group gets s = 1 and levels 0 (symmetric) or z (asymmetric). Group 32 with a
symmetric fp16 scale is llama.cpp's Q4_0 layout (which uses -8..7; we keep the symmetric
grid), group 128 asymmetric with a zero point AWQ's. Scales are stored as fp16, zeros as
b-bit integers (see bits.py); the arithmetic here is float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from eie_jax.compression import share


def _grouped(w, group):
    m, k = w.shape
    if group < 1 or k % group:
        raise ValueError(f"group={group}: must divide the {k} inputs of a {w.shape} matrix")
    return w.reshape(m * (k // group), group)


def rtn(w, bits: int, group: int, symmetric: bool):
    """(w_hat, levels, scales, zeros) of round-to-nearest W (M, K) in groups of inputs.

    levels (M, K) int32; scales, zeros (M, K // group) (zeros None when symmetric).
    """
    w = jnp.asarray(w, jnp.float32)
    m, k = w.shape
    g = _grouped(w, group)
    if symmetric:
        levels, scales = share.linear_quantize(g, bits=bits, axis=0)
        w_hat = levels * scales
        zeros = None
    else:
        levels, scales, zeros = _asymmetric(g, bits)
        w_hat = (levels - zeros) * scales
        zeros = zeros.reshape(m, k // group)
    return (
        w_hat.reshape(m, k),
        levels.reshape(m, k),
        scales.reshape(m, k // group),
        zeros,
    )


@jax.jit
def _asymmetric_core(g, top):
    lo = jnp.minimum(jnp.min(g, axis=1, keepdims=True), 0.0)
    hi = jnp.maximum(jnp.max(g, axis=1, keepdims=True), 0.0)
    scales = jnp.where(hi > lo, (hi - lo) / top, 1.0)
    zeros = jnp.clip(jnp.round(-lo / scales), 0, top)
    levels = jnp.clip(jnp.round(g / scales) + zeros, 0, top)
    return levels.astype(jnp.int32), scales, zeros.astype(jnp.int32)


def _asymmetric(g, bits):
    return _asymmetric_core(g, jnp.float32((1 << bits) - 1))
