"""Bits stored per FC matrix, everything included, for every format of the study.

A matrix W (M, K) of any format stores, in bits:

  per-layer codebook (EIE), dense:   M*K*b + (2**b - 1)*16          codes + fp16 table
  per-layer codebook, pruned:        E*(b + i) + (2**b - 1)*16      Deep Compression's
      relative indices (storage.relative_indices: E entries, fillers included, i-bit
      indices), read column by column
  per-layer codebook, EIE format:    storage.layer_storage's eie_bits without biases:
      per-PE (v, z) entries with padding, 16-bit column pointers, a 2**b x 16-bit table
  per-row codebook:                  M*K*b + M * 2**b * 16
  pruned float (no sharing):         E*(32 + i)
  linear groups of g inputs:         M*K*b + (M*K/g) * (16 [+ b for an asymmetric zero])
  AWQ adds its K per-input scales:   + K*16

Table entries, scales and per-input scales are fp16 (16 bits); entry 0 of a per-layer
table is the constant zero and is not stored. Biases, the embedding, positions and
LayerNorms are the same in every format and are counted apart (`other_bits`).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from eie_jax.compression import storage
from eie_jax.compression.layers import compressible_layers

SCALE_BITS = 16  # fp16 scales, zero points are b-bit integers


def layer_codebook(codes_hw, bits: int, *, index_bits: int | None = None) -> int:
    """Per-layer table with entry 0 = zero: dense codes (index_bits None) or relative
    indices of index_bits (the pruned layout)."""
    codes_hw = np.asarray(codes_hw)
    table = ((1 << bits) - 1) * SCALE_BITS
    if index_bits is None:
        return codes_hw.size * bits + table
    entry_codes, _, _ = storage.relative_indices(codes_hw, index_bits)
    return entry_codes.size * (bits + index_bits) + table


def sparse_float(mask_hw, index_bits: int, value_bits: int = 32) -> int:
    """A pruned float matrix in the relative-index layout: E * (value_bits + index_bits)."""
    entry_codes, _, _ = storage.relative_indices(np.asarray(mask_hw) != 0, index_bits)
    return entry_codes.size * (value_bits + index_bits)


def sparse_model(model, index_bits: int, value_bits: int = 32) -> int:
    """`sparse_float` summed over the model's compressible layers (their masks)."""
    return sum(
        sparse_float(np.asarray(layer.hardware_mask()), index_bits, value_bits)
        for _, layer in compressible_layers(model)
    )


def layer_codebook_eie(codes_hw, bits: int, num_pes: int, index_bits: int) -> int:
    """EIE's format (storage.layer_storage), biases left out."""
    report = storage.layer_storage(
        "w", np.asarray(codes_hw), bits, 4, 0, huffman=False,
        eie_num_pes=num_pes, eie_index_bits=index_bits,
    )  # fmt: skip
    return report.eie_bits


def row_codebook(shape, bits: int) -> int:
    m, k = shape
    return m * k * bits + m * (1 << bits) * SCALE_BITS


def linear_groups(shape, bits: int, group: int, *, asymmetric: bool, input_scales=False) -> int:
    m, k = shape
    per_group = SCALE_BITS + (bits if asymmetric else 0)
    return m * k * bits + (m * k // group) * per_group + (k * SCALE_BITS if input_scales else 0)


def other_bits(model, value_bits: int = 16) -> int:
    """Everything but the FC matrices of a dense model (biases, embedding, positions,
    LayerNorms), at value_bits each."""
    params = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    fc = sum(int(np.prod(layer.kernel_shape)) for _, layer in compressible_layers(model))
    return (sum(int(np.prod(p.shape)) for p in params) - fc) * value_bits
