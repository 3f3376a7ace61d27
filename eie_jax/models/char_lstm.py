"""A character LSTM whose gate matrices and LM head are MaskedLinear layers.

Each layer computes its four gates (input, forget, cell, output) with one MaskedLinear
over [x_t; h_{t-1}] -> 4H plus its bias: EIE's NT-LSTM layout (ISCA 2016, Table IV,
1201 x 2400) is this matrix with the bias as one more input column fed a constant 1, so
pruning, sharing and EIE see one matrix per layer. The embedding stays dense.

The input half of the product, x_t @ W[:E], is computed for all time steps at once and
the recurrent half, h_{t-1} @ W[E:], inside a `lax.scan` over time; the sum is
[x_t; h_{t-1}] @ W. `model(ids, record)` stores each MaskedLinear's inputs (N, in)
under its layer name for GPTQ / AWQ calibration, as the transformer does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from eie_jax.layers import MaskedLinear
from eie_jax.models import register


def _lstm_scan(xw, w_h, bias, hidden):
    """Runs one LSTM layer: xw (B, T, 4H) = x @ W[:E]; returns h (B, T, H)."""
    b = xw.shape[0]

    def step(carry, xw_t):
        h, c = carry
        gates = xw_t + h @ w_h + bias
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((b, hidden), xw.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(xw, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


@register("char_lstm")
class CharLSTM(nnx.Module):
    """ids (B, T) int32 -> next-character logits (B, T, vocab_size); state starts at zero."""

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        vocab_size: int = 96,
        embed_dim: int = 128,
        hidden: int = 512,
        num_layers: int = 2,
        forget_bias: float = 1.0,
    ):
        self.hidden = hidden
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        sizes = [embed_dim] + [hidden] * (num_layers - 1)
        self.cells = nnx.List([MaskedLinear(n + hidden, 4 * hidden, rngs=rngs) for n in sizes])
        for cell in self.cells:  # forget gates start open (Jozefowicz et al. 2015)
            cell.bias[...] = cell.bias[...].at[hidden : 2 * hidden].set(forget_bias)
        self.head = MaskedLinear(hidden, vocab_size, rngs=rngs)

    def __call__(self, ids, record=None):
        x = self.embed(ids)
        for i, cell in enumerate(self.cells):
            w = cell.effective_kernel()
            n_in = x.shape[-1]
            h = _lstm_scan(x @ w[:n_in], w[n_in:], cell.bias[...], self.hidden)
            if record is not None:
                h_prev = jnp.pad(h, ((0, 0), (1, 0), (0, 0)))[:, :-1]
                xh = jnp.concatenate([x, h_prev], axis=-1)
                record[f"cells.{i}"] = xh.reshape(-1, xh.shape[-1])
            x = h
        if record is not None:
            record["head"] = x.reshape(-1, x.shape[-1])
        return self.head(x)
