"""Non-uniform codebooks: one per layer (Deep Compression, what EIE decodes) or one per row.

Per layer: `share.share_weights`, 1-D k-means over the layer's surviving weights with
2**b - 1 centroids and entry 0 the pruned zero (Deep Compression Sec. 3; EIE Sec. III-B),
written into the layer with `MaskedLayer.share`, so the centroids can be fine-tuned.

Per row (SqueezeLLM-like, Kim et al. 2023, without its sensitivity weights): every output
row of W (M, K) gets its own 2**b-entry codebook from 1-D k-means over the row's K
weights: centroids start evenly spaced over [min, max] of the row (Deep Compression's
linear init), then `iters` Lloyd iterations, each assigning every weight to its nearest
centroid (ties to the lower index) and moving every centroid with members to their mean.
EIE cannot run it: its PEs decode one codebook per layer.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax.compression import share
from eie_jax.compression.layers import compressible_layers
from eie_jax.studies.lm import training as lm
from eie_jax.studies.lm.methods import bits as bit_count


def share_model(model, bits: int, init: str = "linear", seed: int = 0) -> None:
    """Every MaskedLinear of the model -> a per-layer 2**bits-entry k-means codebook."""
    for i, (_, layer) in enumerate(compressible_layers(model)):
        codebook, codes = share.share_weights(
            layer.kernel[...], layer.mask[...], bits, init=init, key=jax.random.key(seed + i)
        )
        layer.share(codebook, codes)


def table_rows(shared, name, bits, *, sparsity, index_bits, config, corpus, row, finetune=True):
    """The study's rows of a model with one table per layer (`shared`, changed in place):
    as it is, then, when `finetune`, after config.share.finetune_steps of centroid
    fine-tuning (`name` + "_ft"). Both with the bits of Deep Compression's format (codes
    and, for a pruned model, relative indices of `index_bits`; None: dense codes) and EIE's
    (`bits.layer_codebook_eie`). row: methods.run_job's scorer."""
    st = config.storage
    stored = eie = 0
    for _, layer in compressible_layers(shared):
        codes = np.asarray(layer.hardware_codes())
        stored += bit_count.layer_codebook(codes, bits, index_bits=index_bits)
        eie += bit_count.layer_codebook_eie(codes, bits, st.eie_num_pes, st.eie_index_bits)
    same = dict(sparsity=sparsity, eie=eie, on_eie=True)
    out = [row(name, bits, stored, m=shared, **same)]
    if finetune:
        finetune_centroids(shared, corpus, config, f"{name} fine-tune")
        out.append(row(f"{name}_ft", bits, stored, finetuned=True, m=shared, **same))
    return out


def finetune_centroids(shared, corpus, config, stage: str) -> dict:
    """config.share.finetune_steps of training of a shared model: its codebooks (and the
    biases, LayerNorms and embedding) move, codes and masks stay."""
    return lm.train(
        shared, corpus, config, steps=config.share.finetune_steps,
        learning_rate=config.share.learning_rate, minutes=config.share.max_minutes,
        stage=stage, seed=config.seed + 2,
    )  # fmt: skip


def assign(w, centroids):
    """Nearest centroid of every weight, ties to the lower index: (M, K) ints for
    w (M, K) and per-row centroids (M, C)."""
    return jnp.argmin(jnp.abs(w[:, :, None] - centroids[:, None, :]), axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("bits", "iters"))
def row_kmeans(w, bits: int, iters: int = 25):
    """(w_hat, codes, centroids): per-row k-means of W (M, K) into 2**bits entries."""
    w = jnp.asarray(w, jnp.float32)
    k = 1 << bits
    lo, hi = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    start = lo + (hi - lo) * jnp.linspace(0.0, 1.0, k)[None, :]

    def lloyd(_, centroids):
        members = jax.nn.one_hot(assign(w, centroids), k, dtype=jnp.float32)  # (M, K, C)
        sums = jnp.einsum("mk,mkc->mc", w, members)
        counts = members.sum(axis=1)
        return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), centroids)

    centroids = jax.lax.fori_loop(0, iters, lloyd, start)
    codes = assign(w, centroids)
    return jnp.take_along_axis(centroids, codes, axis=1), codes, centroids


def row_kmeans_np(w, bits: int, iters: int = 25):
    """Host wrapper of `row_kmeans`: NumPy in, NumPy out."""
    w_hat, codes, centroids = row_kmeans(jnp.asarray(w), bits, iters)
    return np.asarray(w_hat), np.asarray(codes), np.asarray(centroids)
