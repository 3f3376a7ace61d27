"""One registry of weight quantizers: the compression pipeline's weight sharing and the
language-model study's methods are entries of it, with one call and one return type.

A quantizer maps a weight matrix w (M outputs x K inputs, EIE's orientation; a one-table
quantizer works elementwise, so a layer's kernel in its own orientation will do), its mask
(1 = kept; None: all kept) and a bit width to a `Quantized`: the weights it stands for
(dequantized, zero where pruned), the bits its stored form takes (codes or integers,
tables, scales), and, for a quantizer with one table per layer (`one_table`, what EIE
decodes: codebook[codes]), the codebook and the codes. A calibrated quantizer (GPTQ, AWQ)
also takes the layer's calibration inputs (N, K); the others ignore them.

    @quantizers.register("my_grid", one_table=True)
    def my_grid(w, mask, bits, *, calibration, init, key) -> Quantized: ...

`config.share.method` of a compression run names a one-table quantizer (its codes run on
EIE); the LM study's `config.quantize.methods` names any (eie_jax/studies/lm/methods).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from eie_jax.compression import share
from eie_jax.utils.cli import UserError


@dataclasses.dataclass(frozen=True)
class Quantized:
    """What a quantizer returns for one matrix."""

    weights: np.ndarray  # (M, K) the weights it stands for, zero where pruned
    stored_bits: int  # bits of the stored form: codes or integers, tables, scales
    codebook: np.ndarray | None = None  # one table per layer (one_table quantizers)
    codes: np.ndarray | None = None  # (M, K) indices into codebook; 0 = pruned
    trainable: bool = False  # may centroid fine-tuning move the codebook


@dataclasses.dataclass(frozen=True)
class Quantizer:
    """A registered quantizer: its function and what it needs and gives."""

    fn: Callable[..., Quantized]
    calibrated: bool  # takes the layer's calibration inputs (N, K)
    one_table: bool  # returns one codebook per layer and codes into it (EIE runs those)


REGISTRY: dict[str, Quantizer] = {}


def register(name: str, *, calibrated: bool = False, one_table: bool = False):
    """Decorator: fn(w, mask, bits, *, calibration, init, key) -> Quantized, by name."""

    def add(fn):
        REGISTRY[name] = Quantizer(fn, calibrated, one_table)
        return fn

    return add


def one_table() -> list[str]:
    """The quantizers a compression run can share its layers with (config.share.method):
    one table per layer, whose codes EIE runs, and no calibration (the run has none)."""
    return sorted(name for name, q in REGISTRY.items() if q.one_table and not q.calibrated)


def get(name: str, where: str = "quantizer") -> Quantizer:
    if name not in REGISTRY:
        raise UserError(f"{where}={name!r}: allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def quantize(name, w, mask, bits, *, calibration=None, init="linear", key=None) -> Quantized:
    """Quantizes one matrix with the registered quantizer `name` (see the module)."""
    quantizer = get(name)
    if quantizer.calibrated and calibration is None:
        raise UserError(f"quantizer {name!r}: needs the layer's calibration inputs")
    return quantizer.fn(w, mask, bits, calibration=calibration, init=init, key=key)


def _codebook_form(codebook, codes, bits, trainable) -> Quantized:
    codebook, codes = np.asarray(codebook, np.float32), np.asarray(codes)
    kept = int(np.count_nonzero(codes))
    return Quantized(
        weights=codebook[codes],
        stored_bits=kept * bits + 32 * codebook.size,  # codes and a float32 table
        codebook=codebook,
        codes=codes,
        trainable=trainable,
    )


@register("kmeans", one_table=True)
def kmeans(w, mask, bits, *, calibration=None, init="linear", key=None) -> Quantized:
    """Deep Compression Sec. 3: a per-layer k-means codebook, fine-tuned afterwards."""
    del calibration
    codebook, codes = share.share_weights(w, _mask(w, mask), bits, init=init, key=key)
    return _codebook_form(codebook, codes, bits, trainable=True)


@register("linear", one_table=True)
def linear(w, mask, bits, *, calibration=None, init="linear", key=None) -> Quantized:
    """The per-layer symmetric int grid of `share.linear_codebook` (W4A16 at 4 bits),
    frozen: fine-tuning moves only the biases, so the weights stay integers times one
    scale. EIE decodes one table per layer, so a per-output-channel scale cannot run on it."""
    del calibration, init, key
    codebook, codes = share.linear_codebook(w, _mask(w, mask), bits)
    return _codebook_form(codebook, codes, bits, trainable=False)


def _mask(w, mask):
    return np.ones(np.shape(w), bool) if mask is None else mask
