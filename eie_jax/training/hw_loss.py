"""EIE's cycle count as a training loss: masks that are sparse *and* fast on the accelerator.

Deep Compression (Han, Mao, Dally, ICLR 2016) minimises bits; EIE (Han et al., ISCA 2016)
runs as fast as its slowest PE allows: every nonzero input activation is broadcast to all
N PEs, each PE spends max(n, 1) cycles on its n entries of that column, and the broadcast
stalls once a PE's FIFO is full (Sec. III-IV). `eie.expected_cycles` is a differentiable
surrogate of that count for a layer whose weights are kept with probability keep_prob
(M, K) and whose inputs are nonzero with probability act_prob (K,). This module sums it
over a model's fully connected layers, the ones EIE runs, so that training with

    loss = cross_entropy + weight * hardware_loss

learns masks that are balanced across PEs and cheap for the inputs the network sees:

- keep_prob: each layer's learned-mask keep probability (`MaskedLayer.keep_prob`, the
  scores phase of prune.score='learned'), in EIE's (M outputs, K inputs) orientation;
- act_prob: the fraction of the batch in which each input of the layer is nonzero,
  measured on the batch's own forward pass. The hard fraction is what EIE's leading
  nonzero detector skips on, so it is the forward value; its gradient is either zero
  (act_temperature = 0) or that of mean sigmoid(pre-activation / act_temperature), a
  straight-through surrogate that lets the loss make hidden activations sparser (the
  only way to take broadcasts, and so cycles, away from a layer whose PEs already do
  at most one entry per column, as LeNet-300-100's do at 64 PEs).

The sum is divided by sum_l K_l, the cycles EIE spends when every input of every layer
is nonzero and no PE has more than one entry in a column (one broadcast per input, one
cycle each): a magnitude-pruned LeNet-300-100 at 64 PEs scores about 0.5, so weights
near 0.1-1 weigh it like the cross entropy.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp

from eie_jax import eie
from eie_jax.compression import products
from eie_jax.compression.layers import MaskedLayer, compressible_layers
from eie_jax.utils import schema
from eie_jax.utils.cli import UserError

SECTION = schema.Section(
    dict(
        weight=schema.number(0.0, 0, note="0: off, nothing traced"),
        num_pes=eie.config.FIELDS.fields["num_pes"],
        fifo_depth=eie.config.FIELDS.fields["fifo_depth"],
        index_bits=eie.config.FIELDS.fields["index_bits"],
        # Width of the smooth maxima of eie.expected_cycles, in cycles.
        temperature=schema.number(0.5, 0, note="0: hard max"),
        # keep_prob = sigmoid((score - top-k threshold) / this).
        keep_temperature=schema.number(0.25, 0, above=True),
        # act_prob's gradient: of mean sigmoid(pre / this).
        act_temperature=schema.number(0.25, 0, note="0: no gradient"),
    ),
    doc="config.hw_loss: the hardware term of the loss",
)
DEFAULTS = SECTION.defaults().to_dict()


@dataclasses.dataclass(frozen=True)
class HWLoss:
    """The hardware term of the training loss; hashable, so it can be a static jit argument."""

    weight: float
    eie: eie.EIEConfig
    temperature: float
    keep_temperature: float
    act_temperature: float
    layers: str = ".*"  # regex (re.fullmatch) of the layers EIE runs (config.eie.layers)

    @classmethod
    def from_config(cls, config) -> HWLoss | None:
        """The term config.hw_loss asks for (defaults: DEFAULTS), or None when weight is 0.

        Raises ValueError naming the field and value of anything out of range.
        """
        s = settings(config)
        cfg = eie.EIEConfig(**{k: s[k] for k in ("num_pes", "fifo_depth", "index_bits")})
        if s["weight"] > 0 and config.prune.score != "learned":
            raise UserError(
                f"config.hw_loss.weight={s['weight']!r}: needs prune.score='learned' (learned "
                f"masks give the differentiable keep probabilities), not {config.prune.score!r}"
            )
        if s["weight"] == 0:
            return None
        return cls(
            weight=float(s["weight"]),
            eie=cfg,
            temperature=float(s["temperature"]),
            keep_temperature=float(s["keep_temperature"]),
            act_temperature=float(s["act_temperature"]),
            layers=config.get("eie", {}).get("layers", ".*"),
        )


def settings(config) -> dict:
    """config.hw_loss over DEFAULTS (a config without the field gets the term switched off).

    Raises UserError naming an unknown field or a value out of range.
    """
    given = dict(config.get("hw_loss", None) or {})
    schema.check(given, SECTION, "config.hw_loss", partial=True)
    return {**DEFAULTS, **given}


def hw_layers(model, spec: HWLoss) -> list[tuple[str, MaskedLayer]]:
    """The layers EIE runs (names matching `spec.layers`), in natural name order."""
    return [(n, m) for n, m in compressible_layers(model) if re.fullmatch(spec.layers, n)]


def layer_inputs(model, images, spec: HWLoss):
    """[(layer, input (N, K), pre-activation of that input or None)] for every layer EIE
    runs, in the order the model's own forward calls them.

    The previous EIE layer's output stands for the pre-activation of a layer's input when
    their shapes match (a ReLU between them, as in the shipped models); otherwise None
    (the first layer, or one fed by host layers).
    """
    recorder = products.Recorder({id(m): n for n, m in hw_layers(model, spec)})
    with products.intercept(recorder):
        model(images)
    out, previous = [], None
    for _, layer, h, y in recorder.calls:
        pre = previous if previous is not None and previous.shape == h.shape else None
        out.append((layer, h, pre))
        previous = y
    return out


def activation_prob(h, pre, act_temperature: float):
    """(K,) fraction of the batch with a nonzero input; its gradient: see the module docstring."""
    hard = jax.lax.stop_gradient(jnp.mean((h != 0).astype(jnp.float32), axis=0))
    if pre is None or act_temperature <= 0:
        return hard
    soft = jnp.mean(jax.nn.sigmoid(pre / act_temperature), axis=0)
    return hard + soft - jax.lax.stop_gradient(soft)


def broadcast_cycles(model, spec: HWLoss) -> int:
    """sum_l K_l: one cycle per input of every FC layer (the normaliser of the loss)."""
    return sum(layer.to_matrix(layer.mask[...]).shape[1] for _, layer in hw_layers(model, spec))


def layer_cycles(model, images, spec: HWLoss):
    """[expected EIE cycles of each FC layer on this batch], differentiable."""
    cycles = []
    for layer, h, pre in layer_inputs(model, images, spec):
        keep = layer.to_matrix(layer.keep_prob(spec.keep_temperature))  # (M, K)
        act = activation_prob(h, pre, spec.act_temperature)
        cycles.append(eie.expected_cycles(keep, act, spec.eie, spec.temperature))
    return cycles


def hardware_loss(model, images, spec: HWLoss):
    """Expected EIE cycles of the FC stack on this batch / `broadcast_cycles` (unweighted)."""
    return sum(layer_cycles(model, images, spec)) / broadcast_cycles(model, spec)
