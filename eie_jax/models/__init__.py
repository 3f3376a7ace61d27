"""Models built from masked layers, a registry by config name, and each model's EIE stack.

Adding a model is one new file in this package: define an `nnx.Module` whose compressible
layers are `MaskedLinear` / `MaskedConv`, decorate it with `@register("name")`, and, if
EIE should run its fully connected layers, give it

    EIE_LAYERS = (EIELayer("fc1", relu=True), EIELayer("fc2", relu=False))  # forward order
    def fc_input(self, x): ...  # what the first EIE layer sees, flattened (B, K)

`config.model = "name"` then finds it: `get_model` imports `eie_jax.models.<name>` when the
name is not registered yet, so the file needs no import elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple

from flax import nnx

MODELS: dict[str, type] = {}


class EIELayer(NamedTuple):
    """One FC layer that EIE runs: its attribute name and whether a ReLU follows it.

    A model lists these in forward order as `EIE_LAYERS`; the output of each is the input
    of the next (after the ReLU when `relu`), the first one sees `model.fc_input(x)`.
    """

    name: str
    relu: bool


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


def eie_layers(model) -> list[tuple[str, nnx.Module, bool]]:
    """[(name, layer, relu)] of the FC layers EIE runs, in the model's forward order.

    Read from the model's `EIE_LAYERS`; a model without it runs nothing on EIE ([]).
    """
    return [(s.name, getattr(model, s.name), s.relu) for s in getattr(model, "EIE_LAYERS", ())]


# The shipped models register on import.
from eie_jax.models import lenet  # noqa: E402, F401
