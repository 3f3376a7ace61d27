"""A decoder-only character transformer whose every weight matrix is a MaskedLinear.

Pre-LayerNorm blocks (Radford et al. 2019): x + attn(LN(x)), then x + mlp(LN(x)); learned
positions; causal multi-head attention; an MLP with ReLU (its activations are sparse, which
EIE skips; GELU as an option). Q, K, V, O, the MLP's up and down projections and the LM
head are MaskedLinear, so they can be pruned, shared and quantised; the character
embedding, the positions and the LayerNorms stay dense (counted separately).

Each layer's inputs, what GPTQ and AWQ calibrate on, come from the model's own forward
(`eie_jax.on_eie.record_inputs`).
"""

from __future__ import annotations

import jax
from flax import nnx

from eie_jax.layers import MaskedLinear
from eie_jax.models import register

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


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

    def __call__(self, x):
        b, t, d = x.shape
        heads = lambda y: y.reshape(b, t, self.num_heads, d // self.num_heads)
        h = self.ln1(x)
        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        a = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, d)
        x = x + self.o(a)
        h = self.ln2(x)
        h = ACTIVATIONS[self.activation](self.up(h))
        return x + self.down(h)


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
