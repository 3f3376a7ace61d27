"""Flax NNX layers for Deep Compression (Han, Mao, Dally, ICLR 2016).

A compressible layer holds, beside its kernel and bias Params, a 0/1 pruning mask (a
non-Param `Mask`, so no optimizer touches it) and goes through three phases:

  dense / pruning ("dense"):  weight = kernel * mask                        (Sec. 2)
  learned masks ("scores"):   weight = kernel * mask * STE(scores)  (eie_jax/compression/topk.py)
  shared ("shared"):          weight = codebook[codes], code 0 = pruned = 0.0  (Sec. 3)

In the shared phase the raw kernel is dropped, so an optimizer built with
`nnx.Optimizer(model, tx, wrt=nnx.Param)` trains only the codebook and the bias, and
autodiff gives each centroid the sum of the gradients of the weights that share it
(Deep Compression Sec. 3.3, Eq. 3).

Kernels are stored the Flax way, (in, out) or (kh, kw, in, out). EIE's hardware matrix W
(M rows = outputs, K columns = inputs) is `to_hardware(kernel)` = kernel.reshape(-1, out).T,
which for a linear layer is kernel.T.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eie_jax.compression import products
from eie_jax.compression.topk import hard_with_identity_grad as _hard_with_identity_grad
from eie_jax.compression.topk import topk as _topk

PHASES = ("dense", "scores", "shared")
LECUN_NORMAL = nnx.initializers.lecun_normal()  # Flax's default for Linear and Conv
ZEROS = nnx.initializers.zeros_init()


class Mask(nnx.Variable):
    """0/1 float pruning mask, same shape as the kernel; never trained."""


class Codes(nnx.Variable):
    """int32 codebook indices, same shape as the kernel; 0 means pruned; never trained."""


class FrozenCodebook(nnx.Variable):
    """A shared-weight table that no optimizer over nnx.Param changes (a fixed integer grid)."""


class Scores(nnx.Param):
    """Trainable per-weight mask scores for learned masks; a weight is kept when its score wins."""


def to_hardware(a):
    """Kernel-shaped array (..., in, out) -> EIE's hardware layout (out, fan_in).

    Row i is output i; for a conv kernel (kh, kw, in, out) the columns are the im2col
    inputs in (kh, kw, in) order, input channels fastest.
    """
    return a.reshape(-1, a.shape[-1]).T


def from_hardware(w_hw, kernel_shape):
    """Inverse of `to_hardware`: (out, fan_in) -> kernel_shape."""
    return w_hw.T.reshape(kernel_shape)


class MaskedLayer(nnx.Module):
    """Shared machinery of MaskedLinear and MaskedConv: phases, masks, scores, codebook."""

    kernel: nnx.Param | None
    bias: nnx.Param
    mask: Mask
    scores: Scores | None
    codebook: nnx.Param | FrozenCodebook | None
    codes: Codes | None

    def _init_weights(self, kernel_shape, rngs, kernel_init, bias_init):
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        self.kernel = nnx.Param(kernel_init(rngs.params(), self.kernel_shape, jnp.float32))
        self.bias = nnx.Param(bias_init(rngs.params(), (self.kernel_shape[-1],), jnp.float32))
        self.mask = Mask(jnp.ones(self.kernel_shape, jnp.float32))
        # nnx.data: these slots hold Variables in later phases, so they are data, not static.
        self.scores = nnx.data(None)
        self.codebook = nnx.data(None)
        self.codes = nnx.data(None)
        self.phase = "dense"
        self.keep_fraction = None

    # -- the weight the forward pass uses ---------------------------------------------

    def hard_mask(self):
        """The 0/1 mask in force now: the Mask, times the score mask in the "scores" phase."""
        mask = self.mask[...]
        if self.phase != "scores":
            return mask
        scores = self.scores[...]
        if self.keep_fraction is None:
            hard = (scores > 0).astype(mask.dtype) * mask
        else:
            hard, _ = _topk(scores, mask, self.keep_fraction)
        return jax.lax.stop_gradient(hard)

    def effective_kernel(self):
        """The kernel-shaped weight of the forward pass (pruned weights exactly 0.0).

        dense: kernel * mask; scores: kernel * mask * STE(scores) with a hard forward and
        identity backward to the scores; shared: codebook[codes] with code 0 -> 0.0, written
        with `where` so that codebook entry 0 gets no gradient (Deep Compression Sec. 3.3).
        """
        if self.phase == "shared":
            codes = self.codes[...]
            return jnp.where(codes == 0, 0.0, self.codebook[...][codes])
        if self.phase == "scores":
            ste = _hard_with_identity_grad(self.scores[...], self.hard_mask())
            return self.kernel[...] * ste
        return self.kernel[...] * self.mask[...]

    # -- pruning ---------------------------------------------------------------------

    def apply_mask(self):
        """kernel <- kernel * mask, so momentum and weight decay cannot revive pruned weights.

        In the "scores" phase the Mask is the set of weights scores may choose from; the
        kernel of score-dropped weights is kept so that a score can bring its weight back.
        """
        if self.kernel is not None:
            self.kernel[...] = self.kernel[...] * self.mask[...]

    def set_mask(self, mask):
        """Writes a new 0/1 mask (kernel-shaped) and zeroes the kernel where it is 0."""
        mask = jnp.asarray(mask, self.mask[...].dtype)
        if mask.shape != self.kernel_shape:
            raise ValueError(
                f"mask: shape {mask.shape} does not match the kernel shape {self.kernel_shape}"
            )
        if self.phase == "shared":
            raise ValueError("set_mask: the layer is shared; pruning must happen before sharing")
        self.mask[...] = mask
        self.apply_mask()

    # -- learned masks --------------------------------------------------------------

    def enable_scores(self, scores=None, *, keep_fraction: float | None = None):
        """Switches to learned masks: a weight is kept when its trainable score wins.

        The mask is scores > 0 (keep_fraction None) or the top round(keep_fraction *
        #allowed) scores, always within the current Mask. The default scores,
        |kernel| / std(kernel) on allowed weights and -1 elsewhere, keep every allowed
        nonzero weight at first. Rebuild the optimizer afterwards: Scores are Params.
        """
        if self.phase != "dense":
            raise ValueError(f"enable_scores: the layer is in phase {self.phase!r}, not 'dense'")
        if keep_fraction is not None and not 0.0 < keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction: {keep_fraction!r}; allowed: None or in (0, 1]")
        mask = self.mask[...]
        if scores is None:
            w = jnp.abs(self.kernel[...])
            scores = jnp.where(mask > 0, w / (jnp.std(self.kernel[...]) + 1e-12), -1.0)
        scores = jnp.asarray(scores, jnp.float32)
        if scores.shape != self.kernel_shape:
            raise ValueError(
                f"scores: shape {scores.shape} does not match the kernel shape {self.kernel_shape}"
            )
        self.scores = Scores(scores)
        self.keep_fraction = None if keep_fraction is None else float(keep_fraction)
        self.phase = "scores"

    def keep_prob(self, temperature: float = 1.0):
        """Soft keep probability per weight, mask * sigmoid((scores - threshold) / temperature).

        The threshold is where the hard mask cuts: 0 when a weight is kept for a positive
        score (keep_fraction None), else halfway between the last kept and the first
        dropped score of the top-k (held constant in the gradient), so that keep_prob
        tends to the hard mask as the temperature goes to 0 in both modes. Kernel-shaped;
        `to_hardware` gives EIE's (M, K) layout for eie.expected_cycles. Outside the
        "scores" phase it is the hard mask.
        """
        if self.phase != "scores":
            return self.hard_mask()
        scores, mask = self.scores[...], self.mask[...]
        if self.keep_fraction is not None:
            scores = scores - _topk(scores, mask, self.keep_fraction)[1]
        return mask * jax.nn.sigmoid(scores / temperature)

    def sparsity_penalty(self, temperature: float = 1.0):
        """Mean keep probability over the allowed weights: a differentiable density to minimise."""
        if self.phase != "scores":
            return jnp.zeros((), jnp.float32)
        mask = self.mask[...]
        return jnp.sum(self.keep_prob(temperature)) / jnp.maximum(jnp.sum(mask), 1.0)

    def freeze_scores(self):
        """Writes the learned hard mask into the Mask, drops the scores, back to "dense"."""
        if self.phase != "scores":
            raise ValueError(f"freeze_scores: the layer is in phase {self.phase!r}, not 'scores'")
        self.mask[...] = self.hard_mask()
        self.scores = None
        self.keep_fraction = None
        self.phase = "dense"
        self.apply_mask()

    # -- weight sharing (Deep Compression Sec. 3) -------------------------------------

    def share(self, codebook, codes, *, trainable: bool = True):
        """Switches to shared weights: weight = codebook[codes], code 0 = pruned = 0.0.

        codebook: (2**bits,) floats with codebook[0] == 0.0 (the pruned weight).
        codes: kernel-shaped ints in [0, 2**bits); nonzero only where the mask is 1.
        The raw kernel is dropped, so an optimizer over nnx.Param trains only the codebook
        and the bias (only the bias when trainable=False: the codebook is then a
        FrozenCodebook, e.g. a linear integer grid that must stay on its grid); rebuild
        the optimizer afterwards.
        """
        if self.phase == "scores":
            raise ValueError("share: call freeze_scores() before sharing a score-masked layer")
        codebook = np.asarray(codebook, np.float32)
        codes = np.asarray(codes)
        size = codebook.shape[0] if codebook.ndim == 1 else 0
        if codebook.ndim != 1 or size < 2 or size & (size - 1):
            raise ValueError(
                f"codebook: shape {codebook.shape}; allowed: (2**bits,) with bits >= 1"
            )
        if codebook[0] != 0.0:
            raise ValueError(f"codebook: entry 0 is {codebook[0]}; it must be 0.0 (pruned)")
        if codes.shape != self.kernel_shape or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(
                f"codes: shape {codes.shape} dtype {codes.dtype}; allowed: integers of the "
                f"kernel shape {self.kernel_shape}"
            )
        if codes.min() < 0 or codes.max() >= size:
            raise ValueError(
                f"codes: range [{codes.min()}, {codes.max()}]; allowed: [0, {size - 1}]"
            )
        if np.any((codes != 0) & (np.asarray(self.mask[...]) == 0)):
            raise ValueError("codes: nonzero codes at pruned positions would revive weights")
        self.codebook = (nnx.Param if trainable else FrozenCodebook)(jnp.asarray(codebook))
        self.codes = Codes(jnp.asarray(codes, jnp.int32))
        self.mask[...] = jnp.asarray(codes != 0, self.mask[...].dtype)
        self.kernel = None
        self.phase = "shared"

    @property
    def weight_bits(self) -> int | None:
        """log2 of the codebook size in the shared phase, else None."""
        if self.codebook is None:
            return None
        return int(self.codebook.shape[0]).bit_length() - 1

    # -- EIE's view -----------------------------------------------------------------

    def to_matrix(self, a):
        """A kernel-shaped array in the (M, K) layout of `hardware_matrix`."""
        return to_hardware(a)

    def from_matrix(self, w):
        """Inverse of `to_matrix`: (M, K) -> kernel-shaped."""
        return from_hardware(w, self.kernel_shape)

    def hardware_matrix(self):
        """The weight as EIE's matrix W (M = outputs, K = fan-in): kernel.T for a linear layer."""
        return to_hardware(self.effective_kernel())

    def hardware_mask(self):
        """The hard mask in the (M, K) layout of `hardware_matrix`."""
        return to_hardware(self.hard_mask())

    def hardware_codes(self):
        """The codes in the (M, K) layout of `hardware_matrix`, for eie.encode (shared only)."""
        if self.phase != "shared":
            raise ValueError(f"hardware_codes: the layer is in phase {self.phase!r}, not 'shared'")
        return to_hardware(self.codes[...])


class MaskedLinear(MaskedLayer):
    """y = x @ W_eff + b with a kernel (in, out), a Mask and, once shared, codebook/codes."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rngs: nnx.Rngs,
        kernel_init=LECUN_NORMAL,
        bias_init=ZEROS,
    ):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}: {value!r}; allowed: a positive integer")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self._init_weights((in_features, out_features), rngs, kernel_init, bias_init)

    def __call__(self, x):
        fn = products.interceptor_for(self)
        if fn is None:
            return x @ self.effective_kernel() + self.bias[...]
        kernel = self.effective_kernel()
        product = products.dot_general_product(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
        return products.through(fn, self, product, lambda: x @ kernel + self.bias[...])


class MaskedConv(MaskedLayer):
    """2-D convolution (NHWC, stride 1) with a kernel (kh, kw, in, out), a Mask and codebook."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size,
        *,
        rngs: nnx.Rngs,
        padding: str = "VALID",
        kernel_init=LECUN_NORMAL,
        bias_init=ZEROS,
    ):
        if padding not in ("VALID", "SAME"):
            raise ValueError(f"padding: {padding!r}; allowed: 'VALID', 'SAME'")
        size = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else tuple(kernel_size)
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"kernel_size: {kernel_size!r}; allowed: a positive int or 2 of them")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}: {value!r}; allowed: a positive integer")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.padding = padding
        self._init_weights((*size, in_features, out_features), rngs, kernel_init, bias_init)

    def __call__(self, x):
        kernel, args = self.effective_kernel(), ((1, 1), self.padding)
        numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
        conv = lambda: (  # noqa: E731
            jax.lax.conv_general_dilated(x, kernel, *args, dimension_numbers=numbers)
            + self.bias[...]
        )
        fn = products.interceptor_for(self)
        if fn is None:
            return conv()
        product = products.conv_product(x, kernel, *args, dimension_numbers=numbers)
        return products.through(fn, self, product, conv)


def _natural_key(path):
    # NNX sorts attributes on split/merge (and so inside nnx.jit), so definition order is
    # lost; natural order of the names (fc2 < fc10, list index 2 < 10) is stable.
    key = []
    for part in path:
        if isinstance(part, int):
            key.append((("", part),))
        else:
            pieces = re.findall(r"(\D*)(\d*)", part)
            key.append(tuple((text, int(num) if num else -1) for text, num in pieces))
    return tuple(key)


def compressible_layers(model) -> list[tuple[str, MaskedLayer]]:
    """Ordered (name, layer) pairs of the masked layers of a model.

    The name is the attribute path joined by '.', e.g. 'fc1' or 'blocks.0.conv'. The order
    is the natural order of the names, which the models in eie_jax.models choose to be the
    forward order (conv1, conv2, fc1, fc2, ...).
    """
    found = [(path, m) for path, m in nnx.iter_modules(model) if isinstance(m, MaskedLayer)]
    found.sort(key=lambda item: _natural_key(item[0]))
    return [(".".join(str(p) for p in path), m) for path, m in found]


def apply_masks(model) -> None:
    """Re-applies every layer's mask to its kernel (kernel <- kernel * mask).

    Call after each optimizer update (inside the jitted step is fine): Adam's moments and
    weight decay would otherwise move pruned weights away from zero (Han et al. 2015 keep
    pruned weights at zero through retraining).
    """
    for _, layer in compressible_layers(model):
        layer.apply_mask()


class Optimizer(nnx.Optimizer):
    """`nnx.Optimizer(model, tx, wrt=nnx.Param)` whose update re-applies every mask.

    After each update kernel <- kernel * mask (`apply_masks`), so momentum and weight
    decay cannot revive a pruned weight: pruned weights stay exactly 0 (Han et al. 2015).
    Build a new one after weight sharing (the kernel Params are replaced by codebooks).
    This is the one optimizer wrapper of the project: the training loops build theirs here.
    """

    def __init__(self, model, tx, *, wrt=nnx.Param):
        super().__init__(model, tx, wrt=wrt)

    def update(self, model, grads, /, **kwargs):
        out = super().update(model, grads, **kwargs)
        apply_masks(model)
        return out
