"""EIE's 16-bit fixed point (Han et al., ISCA 2016, Sec. VI: 16-bit fixed is enough)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1


def quantize(x: jax.Array, frac_bits: int) -> jax.Array:
    """clip(round_half_to_even(x * 2**frac_bits), -2**15, 2**15 - 1) as int32."""
    scaled = jnp.round(jnp.asarray(x, jnp.float32) * (1 << frac_bits))
    return jnp.clip(scaled, INT16_MIN, INT16_MAX).astype(jnp.int32)


def dequantize(q: jax.Array, frac_bits: int) -> jax.Array:
    return q.astype(jnp.float32) / (1 << frac_bits)


def quantize_ste(x: jax.Array, frac_bits: int) -> jax.Array:
    """The dequantised value of quantize(x) forward, the identity backward (STE)."""
    x = jnp.asarray(x, jnp.float32)
    return x + jax.lax.stop_gradient(dequantize(quantize(x, frac_bits), frac_bits) - x)


def saturating_add(acc: jax.Array, term: jax.Array) -> jax.Array:
    """EIE's accumulator update: clip(acc + term) to the 16-bit range."""
    return jnp.clip(acc + term, INT16_MIN, INT16_MAX)
