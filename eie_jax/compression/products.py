"""A layer's matrix product as N activation vectors times W, and its interception.

A compressible layer's product, whatever its Flax operation, is one matrix W (M outputs x
K inputs) applied to N activation vectors: `Product` holds those vectors (N, K), how to
lay a kernel-shaped array out as W (M, K) in the same column order, the bias as (M,), and
how to turn (N, M) outputs back into the operation's result. A dot_general's K is its
contracted axes flattened, M its kernel's other axes; an einsum likewise; a conv's K is
its im2col patch (input channels major, then the window, as
`lax.conv_general_dilated_patches` orders it), and a grouped conv's W is block-diagonal
over the groups.

`intercept(fn)` makes every layer that `fn.selects(layer)` hand its products to `fn`:
`fn.observe(layer, product, bias)` while `fn.calibrating` (the layer goes on in float,
and `fn.observed(layer, output)` sees its output when `fn` has that method), else
`fn(layer, product, bias) -> (N, M)` outputs, bias included, in place of the float
product. Observing works under jit too (the vectors are then traced).
`eie_jax.api.on_eie.run_on_eie` is the interceptor that runs them on EIE.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.utils.cli import UserError


@dataclasses.dataclass(frozen=True)
class Product:
    """One call's matrix product as N activation vectors (N, K) times W.T (K, M).

    vectors: (N, K) float32; matrix(a): a kernel-shaped array -> (M, K) in the same column
    order; bias_vector(b): the layer's bias -> (M,); output(y): (N, M) -> the operation's
    result (shape and dtype).
    """

    vectors: jax.Array
    matrix: Callable[[np.ndarray], np.ndarray]
    bias_vector: Callable[[np.ndarray], np.ndarray]
    output: Callable[[jax.Array], jax.Array]
    key: tuple  # the geometry, so a layer called two ways keeps one W per way


def _out_dtype(lhs, rhs, preferred_element_type):
    return preferred_element_type or jnp.result_type(lhs.dtype, rhs.dtype)


def _flat(x, shape):
    return jnp.asarray(x, jnp.float32).reshape(shape)


def dot_general_product(lhs, rhs, dimension_numbers, preferred_element_type=None) -> Product:
    (lc, rc), (lb, rb) = dimension_numbers
    if lb or rb:
        raise UserError("a dot_general with batch dimensions is not one matrix product")
    lc, rc = tuple(int(a) % lhs.ndim for a in lc), tuple(int(a) % rhs.ndim for a in rc)
    lfree = [d for d in range(lhs.ndim) if d not in lc]
    rfree = [d for d in range(rhs.ndim) if d not in rc]
    k = math.prod(lhs.shape[d] for d in lc)
    m = math.prod(rhs.shape[d] for d in rfree)
    vectors = _flat(jnp.transpose(lhs, lfree + list(lc)), (-1, k))
    out_shape = tuple(lhs.shape[d] for d in lfree) + tuple(rhs.shape[d] for d in rfree)
    dtype = _out_dtype(lhs, rhs, preferred_element_type)
    return Product(
        vectors=vectors,
        matrix=lambda a: np.transpose(a, list(rc) + rfree).reshape(k, m).T,
        bias_vector=lambda b: np.reshape(b, (m,)),
        output=lambda y: jnp.reshape(y, out_shape).astype(dtype),
        key=("dot_general", lc, rc),
    )


def einsum_letters(spec: str, ndim: int | None):
    """(lhs, rhs, out) letters with '...' expanded for an lhs of ndim axes; raises UserError
    when the einsum is not one matrix product (batch letters shared by input and kernel, a
    kernel axis summed away, an operand with a repeated letter)."""
    inputs, out = spec.replace(" ", "").split("->")
    lhs, rhs = inputs.split(",")
    if "..." in rhs:
        raise UserError(f"einsum {spec!r}: an ellipsis in the kernel is not one matrix product")
    if "..." in lhs:
        named = len(lhs) - 3
        fill = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in spec)
        extra = fill[: (ndim - named) if ndim is not None else 1]
        lhs, out = lhs.replace("...", extra), out.replace("...", extra)
    for operand in (lhs, rhs, out):
        if len(set(operand)) != len(operand):
            raise UserError(f"einsum {spec!r}: a repeated letter is not one matrix product")
    contracted = [c for c in rhs if c in lhs]
    rfree = [c for c in rhs if c not in lhs]
    lfree = [c for c in lhs if c not in rhs]
    if any(c in out for c in contracted) or not contracted:
        raise UserError(f"einsum {spec!r}: a batch axis of input and kernel is not one product")
    if set(out) != set(lfree) | set(rfree) or not set(rfree) <= set(out):
        raise UserError(f"einsum {spec!r}: an axis summed away is not one matrix product")
    return lhs, rhs, out, contracted, lfree, rfree


def einsum_product(spec, lhs, rhs, preferred_element_type=None) -> Product:
    lhs_l, rhs_l, out_l, contracted, lfree, rfree = einsum_letters(spec, lhs.ndim)
    size = dict(zip(lhs_l, lhs.shape, strict=True)) | dict(zip(rhs_l, rhs.shape, strict=True))
    k = math.prod(size[c] for c in contracted)
    m = math.prod(size[c] for c in rfree)
    vectors = _flat(jnp.transpose(lhs, [lhs_l.index(c) for c in lfree + contracted]), (-1, k))
    kernel_order = [rhs_l.index(c) for c in contracted + rfree]
    # The bias is laid out over the output's kernel axes in output order (Flax's
    # _infer_broadcasted_bias_shape); W's rows follow the kernel's order.
    bias_letters = [c for c in out_l if c in rfree]
    dtype = _out_dtype(lhs, rhs, preferred_element_type)
    perm = "".join(lfree + rfree) + "->" + out_l

    def output(y):
        y = jnp.reshape(y, tuple(size[c] for c in lfree + rfree))
        return jnp.einsum(perm, y).astype(dtype)

    def bias_vector(b):
        b = np.reshape(b, tuple(size[c] for c in bias_letters))
        return np.transpose(b, [bias_letters.index(c) for c in rfree]).reshape(m)

    return Product(
        vectors=vectors,
        matrix=lambda a: np.transpose(a, kernel_order).reshape(k, m).T,
        bias_vector=bias_vector,
        output=output,
        key=("einsum", lhs_l, rhs_l, out_l),
    )


def conv_product(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
    dimension_numbers=None, feature_group_count=1, preferred_element_type=None,
) -> Product:  # fmt: skip
    """Flax's conv (channels last, kernel (*window, C/groups, O)) as im2col patches."""
    window = rhs.shape[:-2]
    patches = jax.lax.conv_general_dilated_patches(
        lhs, window, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
    )  # fmt: skip
    k = patches.shape[-1]  # C * prod(window), channels major
    cin_g, cout = rhs.shape[-2], rhs.shape[-1]
    groups, p = int(feature_group_count), math.prod(window)
    dtype = _out_dtype(lhs, rhs, preferred_element_type)
    out_shape = patches.shape[:-1] + (cout,)

    def matrix(a):
        a = np.asarray(a).reshape(p, cin_g, cout)
        full = np.zeros((cout, groups * cin_g, p), a.dtype)
        og = cout // groups
        for g in range(groups):
            block = a[:, :, g * og : (g + 1) * og]  # (p, cin_g, og)
            full[g * og : (g + 1) * og, g * cin_g : (g + 1) * cin_g] = block.transpose(2, 1, 0)
        return full.reshape(cout, k)

    return Product(
        vectors=_flat(patches, (-1, k)),
        matrix=matrix,
        bias_vector=lambda b: np.reshape(b, (cout,)),
        output=lambda y: jnp.reshape(y, out_shape).astype(dtype),
        key=("conv", tuple(window_strides), str(padding), groups),
    )


# ------------------------------------------------------------------ interception

_INTERCEPTOR: contextvars.ContextVar = contextvars.ContextVar("eie_interceptor", default=None)


@contextlib.contextmanager
def intercept(fn):
    """Makes `fn` the interceptor of every compressible layer's products (module docstring)."""
    token = _INTERCEPTOR.set(fn)
    try:
        yield fn
    finally:
        _INTERCEPTOR.reset(token)


def interceptor_for(layer):
    """The active interceptor when it selects `layer`, else None."""
    fn = _INTERCEPTOR.get()
    return fn if fn is not None and fn.selects(layer) else None


def bias_of(layer):
    """A layer's bias array (traced under jit), or None."""
    bias = getattr(layer, "bias", None)
    return None if bias is None else bias[...]


def observed(fn, layer, output):
    """Hands a calibrating interceptor the layer's float output; returns the output."""
    if hasattr(fn, "observed"):
        fn.observed(layer, output)
    return output


def through(fn, layer, product: Product, float_output):
    """A layer's output when interceptor `fn` selects it: calibrating, `fn` observes the
    product and the layer goes on in float (`float_output()`); else `fn` computes it."""
    if fn.calibrating:
        fn.observe(layer, product, bias_of(layer))
        return observed(fn, layer, float_output())
    return product.output(fn(layer, product, bias_of(layer)))


class Recorder:
    """An interceptor that only observes: [name, layer, input vectors (N, K), output
    (N, M)] of every call of the layers in `names` ({id(layer): name}), in call order;
    traced under jit, concrete when the forward runs eagerly."""

    calibrating = True

    def __init__(self, names: dict):
        self.names, self.calls = names, []

    def selects(self, layer) -> bool:
        return id(layer) in self.names

    def observe(self, layer, product, bias) -> None:
        self.calls.append([self.names[id(layer)], layer, product.vectors, None])

    def observed(self, layer, output) -> None:
        self.calls[-1][3] = output.reshape(-1, output.shape[-1])
