"""A decoder-only character transformer whose every weight matrix is a MaskedLinear.

Pre-LayerNorm blocks (Radford et al. 2019): x + attn(LN(x)), then x + mlp(LN(x)); learned
positions; causal multi-head attention; an MLP with ReLU (its activations are sparse, which
EIE skips; GELU as an option). Q, K, V, O, the MLP's up and down projections and the LM
head are MaskedLinear, so they can be pruned, shared and quantised; the character
embedding, the positions and the LayerNorms stay dense (counted separately).

Each layer's inputs, what GPTQ and AWQ calibrate on, come from the model's own forward
(`eie_jax.api.on_eie.record_inputs`). Generation steps the same forward with a KV cache of
fixed size (`init_cache`, `decode`): the keys and values of every position so far, and the
position the next characters start at, as Flax's decode caches hold them; shapes do not
change from step to step, so nothing recompiles.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from eie_jax.compression.layers import MaskedLinear
from eie_jax.models import register

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


class KVCache(NamedTuple):
    """keys, values: (num_layers, B, context, heads, head_dim); index: () int32, the
    position of the next character (positions >= index are empty)."""

    keys: jax.Array
    values: jax.Array
    index: jax.Array


class Block(nnx.Module):
    """LN -> causal self-attention (q, k, v, o) -> residual; LN -> MLP (up, down) -> residual."""

    def __init__(self, d_model, num_heads, d_mlp, activation, *, rngs):
        self.num_heads = num_heads
        self.activation = activation
        self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.q = MaskedLinear(d_model, d_model, rngs=rngs)
        self.k = MaskedLinear(d_model, d_model, rngs=rngs)
        self.v = MaskedLinear(d_model, d_model, rngs=rngs)
        self.o = MaskedLinear(d_model, d_model, rngs=rngs)
        self.up = MaskedLinear(d_model, d_mlp, rngs=rngs)
        self.down = MaskedLinear(d_mlp, d_model, rngs=rngs)

    def __call__(self, x, kv=None, start=None):
        """x (B, T, d) -> x; with kv (keys, values) of (B, C, heads, head_dim) and the
        position `start` of x's first row: (x, the updated kv)."""
        b, t, d = x.shape
        heads = lambda y: y.reshape(b, t, self.num_heads, d // self.num_heads)  # noqa: E731
        h = self.ln1(x)
        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        if kv is None:
            a = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        else:
            keys = jax.lax.dynamic_update_slice_in_dim(kv[0], k, start, axis=1)
            values = jax.lax.dynamic_update_slice_in_dim(kv[1], v, start, axis=1)
            allowed = jnp.arange(keys.shape[1])[None, :] <= start + jnp.arange(t)[:, None]
            a = jax.nn.dot_product_attention(q, keys, values, mask=allowed[None, None])
            kv = (keys, values)
        x = x + self.o(a.reshape(b, t, d))
        h = ACTIVATIONS[self.activation](self.up(self.ln2(x)))
        x = x + self.down(h)
        return x if kv is None else (x, kv)


@register("char_transformer")
class CharTransformer(nnx.Module):
    """ids (B, T) int32, T <= context -> next-character logits (B, T, vocab_size)."""

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        vocab_size: int = 96,
        context: int = 128,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        d_mlp: int = 1024,
        activation: str = "relu",
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r}; allowed: {sorted(ACTIVATIONS)}")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of num_heads={num_heads}")
        self.context = context
        self.embed = nnx.Embed(vocab_size, d_model, rngs=rngs)
        self.positions = nnx.Param(0.02 * jax.random.normal(rngs.params(), (context, d_model)))
        self.blocks = nnx.List(
            [Block(d_model, num_heads, d_mlp, activation, rngs=rngs) for _ in range(num_layers)]
        )
        self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = MaskedLinear(d_model, vocab_size, rngs=rngs)

    def __call__(self, ids):
        t = ids.shape[1]
        x = self.embed(ids) + self.positions[...][:t]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def init_cache(self, batch_size: int) -> KVCache:
        """An empty KV cache for `decode` (context positions)."""
        d = self.positions.shape[1]
        heads = self.blocks[0].num_heads
        shape = (len(self.blocks), batch_size, self.context, heads, d // heads)
        zeros = jnp.zeros(shape, jnp.float32)
        return KVCache(zeros, zeros, jnp.zeros((), jnp.int32))

    def decode(self, ids, cache: KVCache):
        """ids (B, T) at positions cache.index .. + T - 1 (which must stay below context)
        -> (logits (B, T, vocab), the cache with their keys and values)."""
        t = ids.shape[1]
        start = cache.index
        positions = jax.lax.dynamic_slice_in_dim(self.positions[...], start, t, axis=0)
        x = self.embed(ids) + positions
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, (k, v) = block(x, (cache.keys[i], cache.values[i]), start)
            keys.append(k)
            values.append(v)
        logits = self.head(self.ln_f(x))
        return logits, KVCache(jnp.stack(keys), jnp.stack(values), start + t)
