"""eie-jax: Deep Compression in Flax NNX and a functional, differentiable model of EIE."""
