"""eie-jax: Deep Compression in Flax NNX and a functional, differentiable model of EIE."""

from eie_jax import xla_flags as _xla_flags

_xla_flags.apply()  # before JAX starts a backend: small cycle loops as one CPU kernel
