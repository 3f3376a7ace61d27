"""A compressed layer in EIE's terms, its fixed-point formats and the dense fixed-point oracle.

The bridge between the two halves of eie-jax: a compressed layer (codes, codebook, bias)
is an `FCLayer`, an EIE weight matrix W (outputs x inputs) with integer codes; its
fractional bits for EIE's 16-bit fixed point are calibrated on data (`calibrate`,
`bias_corrected`); `fixed_point_forward` computes EIE's arithmetic densely, the oracle
that `on_eie.run_on_eie` (which runs a model's own forward on EIE) equals bit for bit.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax import eie
from eie_jax.eie import fixed_point


@dataclasses.dataclass(frozen=True)
class FCLayer:
    """A compressed fully connected layer in hardware orientation.

    codes: (M, K) ints, 0 = pruned, W[r, j] = codebook[codes[r, j]]; bias: (M,);
    relu: whether the layer's output goes through a ReLU.
    """

    name: str
    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    relu: bool

    @property
    def weight_bits(self) -> int:
        return int(math.log2(len(self.codebook)))

    def dense(self) -> np.ndarray:
        return np.where(self.codes == 0, 0.0, self.codebook[self.codes]).astype(np.float32)


def frac_bits_for(max_abs: float, headroom_bits: int = 1) -> int:
    """Fractional bits so that max_abs (times 2**headroom_bits) stays below 2**15 in int16."""
    if max_abs <= 0:
        return 15 - headroom_bits
    integer_bits = max(math.floor(math.log2(max_abs)) + 1, 0) + headroom_bits
    return int(min(max(15 - integer_bits, 0), 15))


def float_forward(layers: list[FCLayer], x) -> list[np.ndarray]:
    """Float activations at every layer boundary: [x, out_1 (pre-ReLU), ..., out_L]."""
    acts = [np.asarray(x, np.float32)]
    h = acts[0]
    for layer in layers:
        pre = h @ layer.dense().T + layer.bias
        acts.append(pre)
        h = np.maximum(pre, 0) if layer.relu else pre
    return acts


def calibrate(
    layers: list[FCLayer], x_calib, base: eie.EIEConfig, headroom_bits: int = 1
) -> list[eie.EIEConfig]:
    """One EIEConfig per layer with act/weight fractional bits fitted to the data.

    A layer's activations in and out share act_frac_bits (EIE's accumulator holds the
    output in the input's format), so it is set by the larger of the two ranges.
    """
    acts = float_forward(layers, x_calib)
    cfgs = []
    for i, layer in enumerate(layers):
        max_act = max(float(np.abs(acts[i]).max()), float(np.abs(acts[i + 1]).max()))
        cfgs.append(
            base.replace(
                weight_bits=layer.weight_bits,
                act_frac_bits=frac_bits_for(max_act, headroom_bits),
                weight_frac_bits=frac_bits_for(float(np.abs(layer.codebook).max()), 0),
            )
        )
    return cfgs


def bias_corrected(layer: FCLayer, x, cfg: eie.EIEConfig) -> FCLayer:
    """The layer with its bias absorbing the mean error of its fixed-point product on x.

    EIE truncates every product (w_q a_q) >> weight_frac_bits, so each term loses half an
    activation LSB on average and a row of n nonzero terms drifts by about -n/2 LSBs;
    adding the measured mean difference (float product of the quantised inputs minus the
    fixed-point one) to the bias cancels that drift (empirical bias correction, as in
    Nagel et al. 2019). The hardware is unchanged: the bias is the layer's own, programmed
    in the activation format.
    """
    linear = dataclasses.replace(layer, relu=False)
    xq = np.asarray(
        fixed_point.dequantize(fixed_point.quantize(x, cfg.act_frac_bits), cfg.act_frac_bits)
    )
    exact = xq @ layer.dense().T + layer.bias
    fixed = fixed_point_forward([linear], x, [cfg])
    return dataclasses.replace(layer, bias=layer.bias + np.mean(exact - fixed, axis=0))


def fixed_point_forward(layers: list[FCLayer], x, cfgs: list[eie.EIEConfig]) -> np.ndarray:
    """The compressed FC stack in EIE's fixed point, computed densely (no EIE encoding).

    Same arithmetic as the datapath, independently written: per output row, columns in
    increasing order, acc = clip(acc + ((w_q * a_q) >> weight_frac_bits)).
    """
    h = jnp.asarray(x, jnp.float32)
    for layer, cfg in zip(layers, cfgs, strict=True):
        h = _dense_fixed_point_layer(
            h,
            jnp.asarray(layer.codes),
            jnp.asarray(layer.codebook),
            jnp.asarray(layer.bias, jnp.float32),
            act_frac_bits=cfg.act_frac_bits,
            weight_frac_bits=cfg.weight_frac_bits,
            relu=layer.relu,
        )
    return np.asarray(h)


@jax.jit(static_argnames=("act_frac_bits", "weight_frac_bits", "relu"))
def _dense_fixed_point_layer(x, codes, codebook, bias, *, act_frac_bits, weight_frac_bits, relu):
    wq = jnp.where(codes == 0, 0, fixed_point.quantize(codebook, weight_frac_bits)[codes])
    xq = fixed_point.quantize(x, act_frac_bits)  # (B, K)
    acc0 = jnp.broadcast_to(fixed_point.quantize(bias, act_frac_bits), (x.shape[0], codes.shape[0]))

    def column(acc, inputs):
        w_col, x_col = inputs  # (M,), (B,)
        term = jnp.right_shift(x_col[:, None] * w_col[None, :], weight_frac_bits)
        return fixed_point.saturating_add(acc, term), None

    acc, _ = jax.lax.scan(column, acc0, (wq.T, xq.T))
    if relu:
        acc = jnp.maximum(acc, 0)
    return fixed_point.dequantize(acc, act_frac_bits)
