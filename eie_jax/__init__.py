"""eie-jax: Deep Compression in Flax NNX and a functional, differentiable model of EIE.

The library API works on any Flax NNX model (see eie_jax/api/compression.py):

    eie_jax.make_compressible(model, rules=None)      # in place; returns model
    eie_jax.prune_weights(model, sparsity=0.9)        # one-shot, any registered rule
    eie_jax.calibrated_prune(model, x, rule="sparsegpt", n=2, m=4)  # Wanda, SparseGPT
    eie_jax.Optimizer(model, tx)                      # masks re-applied after each update
    eie_jax.share_weights(model, bits=4)              # k-means codes + codebook
    outputs, report = eie_jax.run_on_eie(model, x, calibration=...)
    eie_jax.storage_report(model)

Names are imported on first use, so `import eie_jax` stays light.
"""

from eie_jax.utils import xla_flags as _xla_flags

_xla_flags.apply()  # before JAX starts a backend: small cycle loops as one CPU kernel

_EXPORTS = {
    "make_compressible": "eie_jax.compression.compressible",
    "prune_weights": "eie_jax.api.compression",
    "share_weights": "eie_jax.api.compression",
    "Optimizer": "eie_jax.api.compression",
    "storage_report": "eie_jax.api.compression",
    "gradual": "eie_jax.api.compression",
    "cubic_sparsity": "eie_jax.api.compression",
    "iterative_targets": "eie_jax.api.compression",
    "Schedule": "eie_jax.api.compression",
    "apply_masks": "eie_jax.api.compression",
    "calibrated_prune": "eie_jax.compression.prune",
    "run_on_eie": "eie_jax.api.on_eie",
    "EIEReport": "eie_jax.api.figures",
    "LayerFigures": "eie_jax.api.figures",
    "EIEConfig": "eie_jax.eie.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'eie_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
