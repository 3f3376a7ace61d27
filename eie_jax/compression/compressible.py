"""Any Flax NNX model made compressible in place, and its products made interceptable.

`make_compressible(model, rules)` swaps the class of every `nnx.Linear`, `nnx.Conv`,
`nnx.LinearGeneral` and `nnx.Einsum` whose weight is one matrix product after reshaping
(as qwix swaps classes): the object, its Param paths, dtype, precision and `use_bias` stay
what they were; the layer gains a `Mask` beside its kernel and the phases of
`layers.MaskedLayer` (pruning, learned masks, shared codes and codebook). In the dense
phase the forward is the layer's own Flax `__call__` with kernel * mask, so float outputs
are bit-identical until something is pruned.

The matrix of a layer, W (M outputs x K inputs), is the kernel with its contracted axes
flattened into K and its output axes into M; a conv's K is its im2col patch (input
channels major, then the window, as `lax.conv_general_dilated_patches` orders it), and a
grouped conv's W is block-diagonal over the groups. The Flax `__call__` runs with the
product operation (`dot_general`, `einsum_op` or `conv_general_dilated`) replaced when an
interceptor is active (`intercept`): it receives the operands as N activation vectors
(N, K) and the layer's W codes, returns (N, M) outputs with the bias included, and the
Flax code reshapes them as its own product. `run_on_eie` uses this to run the model's own
forward with each product on the EIE model.

rules: [(regex, overrides)], matched with `re.fullmatch` on the '.'-joined module path,
first match wins; overrides here: `compress` (False leaves the layer as it is) and `eie`
(False keeps a compressible layer on the host in `run_on_eie`).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from eie_jax.compression import products
from eie_jax.compression.layers import Mask, MaskedLayer
from eie_jax.utils.cli import UserError

RULE_KEYS = {"compress": bool, "eie": bool}


# ------------------------------------------------------------------ rules


def match_rule(rules, name: str) -> dict:
    """The overrides of the first rule whose regex fully matches `name`: {} when no rule
    matches, None when the rule's overrides are None (leave the layer out)."""
    for pattern, overrides in rules or ():
        if re.fullmatch(pattern, name):
            return None if overrides is None else dict(overrides)
    return {}


def check_rules(rules, allowed, where: str) -> list:
    """Rules as a list of (regex, dict or None), each regex compiled and each key allowed."""
    out = []
    for i, rule in enumerate(rules or ()):
        if not (isinstance(rule, tuple | list) and len(rule) == 2):
            raise UserError(f"{where}: rule {i} is {rule!r}; a rule is (regex, overrides)")
        pattern, overrides = rule
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise UserError(f"{where}: rule {i} regex {pattern!r} is invalid: {e}") from None
        if overrides is not None:
            bad = sorted(set(dict(overrides)) - set(allowed))
            if bad:
                raise UserError(
                    f"{where}: rule {i} ({pattern!r}) has unknown override {bad[0]!r}; "
                    f"allowed: {sorted(allowed)}"
                )
        out.append((pattern, overrides))
    return out


# ------------------------------------------------------------------ the product as vectors


class _View:
    """The layer as Flax's __call__ sees it, with some attributes replaced."""

    def __init__(self, layer, **replaced):
        self.__dict__["_layer"], self.__dict__["_replaced"] = layer, replaced

    def __getattr__(self, name):
        replaced = self.__dict__["_replaced"]
        return replaced[name] if name in replaced else getattr(self.__dict__["_layer"], name)


class Compressible(MaskedLayer):
    """What `make_compressible` adds to a Flax layer: MaskedLayer's phases on its own kernel.

    Subclasses name the Flax class (`flax_class`) and the attribute holding its product
    operation (`op_name`) and turn that operation's arguments into a `Product`.
    """

    flax_class: type
    op_name: str
    replaced: dict = {}  # attributes Flax's __call__ reads that the view replaces

    def _init_compressible(self, name: str, on_eie: bool):
        kernel = self.kernel[...]
        self.kernel_shape = tuple(int(d) for d in kernel.shape)
        self.kernel_dtype = str(kernel.dtype)
        self.mask = nnx.data(Mask(jnp.ones(kernel.shape, kernel.dtype)))  # Conv: was static None
        self.scores = nnx.data(None)
        self.codebook = nnx.data(None)
        self.codes = nnx.data(None)
        self.phase = "dense"
        self.keep_fraction = None
        self.path = name
        self.on_eie = bool(on_eie)

    def effective_kernel(self):
        return super().effective_kernel().astype(self.kernel_dtype)

    def matrix_axes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(contracted, output) kernel axes: W = kernel.transpose(in + out).reshape(K, M).T."""
        n = len(self.kernel_shape)
        return tuple(range(n - 1)), (n - 1,)

    def to_matrix(self, a):
        """A kernel-shaped array as W's (M, K) layout (a grouped conv: its C/groups columns)."""
        cin, cout = self.matrix_axes()
        k = math.prod(self.kernel_shape[d] for d in cin)
        return jnp.transpose(a, cin + cout).reshape(k, -1).T

    def from_matrix(self, w):
        cin, cout = self.matrix_axes()
        shape = [self.kernel_shape[d] for d in cin + cout]
        return jnp.transpose(jnp.reshape(w.T, shape), np.argsort(cin + cout))

    def hardware_matrix(self):
        return self.to_matrix(self.effective_kernel())

    def hardware_mask(self):
        return self.to_matrix(self.hard_mask())

    def hardware_codes(self):
        if self.phase != "shared":
            raise ValueError(f"hardware_codes: the layer is in phase {self.phase!r}, not 'shared'")
        return self.to_matrix(self.codes[...])

    def _product(self, *args, **kwargs) -> products.Product:
        raise NotImplementedError

    def _ops(self, op) -> dict:
        """The attributes that hold the product operation, all set to `op`."""
        return {self.op_name: op}

    def _float_op(self):
        return getattr(self, self.op_name)

    def __call__(self, *args, **kwargs):
        base = self.flax_class.__call__
        view = _View(self, kernel=self.effective_kernel(), **self.replaced)
        fn = products.interceptor_for(self)
        if fn is None:
            return base(view, *args, **kwargs)
        bias = products.bias_of(self)

        def product_of(op_args, op_kwargs):
            kw = {k: v for k, v in op_kwargs.items() if k in _PRODUCT_KWARGS}
            return self._product(*op_args, **kw)

        if fn.calibrating:  # the layer goes on in float; the interceptor sees its inputs

            def observed(*op_args, **op_kwargs):
                fn.observe(self, product_of(op_args, op_kwargs), bias)
                return self._float_op()(*op_args, **op_kwargs)

            out = base(_View(view, **self._ops(observed)), *args, **kwargs)
            return products.observed(fn, self, out)

        def replaced(*op_args, **op_kwargs):
            product = product_of(op_args, op_kwargs)
            return product.output(fn(self, product, bias))

        view = _View(view, bias=None, use_bias=False, **self._ops(replaced))
        return base(view, *args, **kwargs)


# What the product constructors read of an operation's keyword arguments.
_PRODUCT_KWARGS = (
    "dimension_numbers", "lhs_dilation", "rhs_dilation", "feature_group_count",
    "preferred_element_type",
)  # fmt: skip


class CompressibleLinear(Compressible, nnx.Linear):
    flax_class, op_name = nnx.Linear, "dot_general"

    def _product(self, lhs, rhs, dimension_numbers, **kw):
        return products.dot_general_product(lhs, rhs, dimension_numbers, **kw)


class CompressibleLinearGeneral(Compressible, nnx.LinearGeneral):
    flax_class, op_name = nnx.LinearGeneral, "dot_general"

    def matrix_axes(self):
        n_in = len(self.in_features)
        return tuple(range(n_in)), tuple(range(n_in, len(self.kernel_shape)))

    def _product(self, lhs, rhs, dimension_numbers, **kw):
        return products.dot_general_product(lhs, rhs, dimension_numbers, **kw)

    def _ops(self, op):
        return {"dot_general": op, "dot_general_cls": None}

    def _float_op(self):
        if self.dot_general_cls is not None:
            return self.dot_general_cls()
        return self.dot_general or jax.lax.dot_general


class CompressibleEinsum(Compressible, nnx.Einsum):
    flax_class, op_name = nnx.Einsum, "einsum_op"

    def matrix_axes(self):
        _, rhs, _, contracted, _, rfree = products.einsum_letters(self.einsum_str, None)
        return tuple(rhs.index(c) for c in contracted), tuple(rhs.index(c) for c in rfree)

    def _product(self, spec, lhs, rhs, **kw):
        return products.einsum_product(spec, lhs, rhs, **kw)


class CompressibleConv(Compressible, nnx.Conv):
    flax_class, op_name = nnx.Conv, "conv_general_dilated"

    replaced = {"mask": None}  # Flax's own conv mask: the layer has none (see _why_not)

    def _product(self, lhs, rhs, window_strides, padding, **kw):
        return products.conv_product(lhs, rhs, window_strides, padding, **kw)


SWAPS = {
    nnx.Linear: CompressibleLinear,
    nnx.LinearGeneral: CompressibleLinearGeneral,
    nnx.Einsum: CompressibleEinsum,
    nnx.Conv: CompressibleConv,
}


def _why_not(module) -> str | None:
    """Why a Flax layer is not one matrix product after reshaping (None: it is)."""
    kernel_ndim = np.ndim(module.kernel[...])
    if isinstance(module, nnx.Linear) and kernel_ndim != 2:
        return f"a stacked kernel of shape {tuple(module.kernel.shape)}"
    if isinstance(module, nnx.LinearGeneral):
        if module.batch_axis:
            return "batch axes"
        if kernel_ndim != len(module.in_features) + len(module.out_features):
            return f"a stacked kernel of shape {tuple(module.kernel.shape)}"
    if isinstance(module, nnx.Conv):
        if module.mask is not None:
            return "a convolution mask of its own"
        if kernel_ndim != len(module.kernel_size) + 2:
            return f"a stacked kernel of shape {tuple(module.kernel.shape)}"
    if isinstance(module, nnx.Einsum):
        if module.einsum_str is None:
            return "an einsum string given only at call time"
        try:
            products.einsum_letters(module.einsum_str, None)
        except UserError as e:
            return str(e).split(": ", 1)[1]
        if kernel_ndim != len(module.kernel_shape):
            return f"a stacked kernel of shape {tuple(module.kernel.shape)}"
    return None


def make_compressible(model, rules=None):
    """Makes every matrix-product layer of `model` compressible, in place; returns `model`.

    Layers of the exact classes nnx.Linear, nnx.Conv (any stride, padding, dilation,
    feature groups), nnx.LinearGeneral and nnx.Einsum (without batch axes) change class to
    a `Compressible` subclass; rules `[(regex, {"compress": bool, "eie": bool})]` on
    '.'-joined module paths choose (first full match wins; `None` as overrides = leave it).
    Layers that are not one matrix product (batch axes, `nnx.vmap`-stacked kernels) stay
    float and are named in one log line. A module shared by two parents is swapped once,
    under its first path. Already compressible layers are left as they are.
    """
    rules = check_rules(rules, RULE_KEYS, "make_compressible")
    left = []
    for path, module in nnx.iter_modules(model):
        cls = SWAPS.get(type(module))
        if cls is None:
            continue
        name = ".".join(str(p) for p in path)
        overrides = match_rule(rules, name)
        if overrides is None or not overrides.get("compress", True):
            continue
        why = _why_not(module)
        if why is not None:
            left.append(f"{name} ({why})")
            continue
        module.__class__ = cls
        module._init_compressible(name, overrides.get("eie", True))
    if left:
        logging.info("make_compressible: left float (not one matrix product): %s", "; ".join(left))
    return model
