"""The public API (rank 3): compression of any Flax NNX model, running it on EIE, the per-layer
figures. eie_jax/__init__.py re-exports it lazily.
"""
