"""Models built from masked layers, and a registry by config name.

Adding a model is one new file in this package: define an `nnx.Module` whose compressible
layers are `MaskedLinear` / `MaskedConv` (or plain Flax layers made compressible with
`eie_jax.make_compressible`) and decorate it with `@register("name")`. EIE runs the
layers that `config.eie.layers` names, through the model's own forward
(`eie_jax.run_on_eie`): no list of layers or special input method is needed.
`config.model = "name"` then finds it: `get_model` imports `eie_jax.models.<name>` when the
name is not registered yet, so the file needs no import elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil

from flax import nnx

MODELS: dict[str, type] = {}


def register(name: str):
    """Class decorator: makes a model buildable as `config.model = name`."""

    def add(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model {name!r} is registered twice ({MODELS[name]} and {cls})")
        MODELS[name] = cls
        return cls

    return add


def available() -> list[str]:
    """Every model name: the registered ones and the modules of this package."""
    modules = [m.name for m in pkgutil.iter_modules(__path__)]
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")
    return sorted(MODELS)


def get_model(name: str, *, rngs: nnx.Rngs, **kwargs) -> nnx.Module:
    """Builds a model by its config name (see `available()` for the list); kwargs go to its
    constructor (sizes, vocabulary)."""
    if name not in MODELS:
        available()
    if name not in MODELS:
        raise ValueError(f"model: {name!r}; allowed: {', '.join(available())}")
    return MODELS[name](rngs=rngs, **kwargs)


# The shipped models register on import.
from eie_jax.models import lenet  # noqa: E402, F401
