"""A character LSTM whose gate matrices and LM head are MaskedLinear layers.

Each layer computes its four gates (input, forget, cell, output) with one MaskedLinear
over [x_t; h_{t-1}] -> 4H plus its bias: EIE's NT-LSTM layout (ISCA 2016, Table IV,
1201 x 2400) is this matrix with the bias as one more input column fed a constant 1, so
pruning, sharing and EIE see one matrix per layer. The embedding stays dense.

The cell layer is called once per time step, so whatever intercepts its products
(`eie_jax.run_on_eie`, `on_eie.record_inputs`) sees every step: under a JAX transform
(training, jit) the steps are a `lax.scan`; called eagerly, a Python loop over time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from eie_jax.compression.layers import MaskedLinear
from eie_jax.models import register


def _lstm_step(cell, hidden, carry, x_t):
    """One step of one layer: (h, c), x_t (B, E) -> (h, c), h."""
    h, c = carry
    gates = cell(jnp.concatenate([x_t, h], axis=-1))
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def _lstm_layer(cell, x, hidden, carry=None):
    """Runs one LSTM layer over x (B, T, E) from `carry` (h, c) (None: zeros); returns
    (h (B, T, H), the last (h, c))."""
    if carry is None:
        zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
        carry = (zeros, zeros)
    step = lambda carry, x_t: _lstm_step(cell, hidden, carry, x_t)  # noqa: E731
    if isinstance(x, jax.core.Tracer):
        carry, hs = jax.lax.scan(step, carry, jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(hs, 0, 1), carry
    hs = []
    for t in range(x.shape[1]):
        carry, h = step(carry, x[:, t])
        hs.append(h)
    return jnp.stack(hs, axis=1), carry


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

    def __call__(self, ids):
        return self.decode(ids)[0]

    def decode(self, ids, state=None):
        """ids (B, T) from `state` ([(h, c)] per layer; None: zeros) -> (logits, state):
        generation feeds one character at a time and carries the state."""
        x, new_state = self.embed(ids), []
        for i, cell in enumerate(self.cells):
            x, carry = _lstm_layer(cell, x, self.hidden, None if state is None else state[i])
            new_state.append(carry)
        return self.head(x), new_state
