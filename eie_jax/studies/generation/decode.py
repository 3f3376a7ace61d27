"""Batch-1 text generation with every FC matrix-vector product on the EIE model.

A compressed character LM (every MaskedLinear pruned, then one 2**bits-entry table per
layer: run.compress, the recipe of config.generate; `prune_magnitude` here is its
default pruning) runs through its own forward: `model.decode` with a KV cache (the
transformer) or its (h, c) state (the LSTM), one character at a time, inside an
`on_eie.EIESession` that runs each FC product on EIE (`eie.simulate_batch`, batch 1)
and keeps each layer's figures for the sampled steps; an
`EIESession(backend="fixed_point")` computes the same fixed point densely, the
independent oracle (its outputs equal EIE's bit for bit). Each layer gets its own
16-bit fixed-point format from the float model's inputs on
calibration text (`calibrate`).

EIE runs only the FC layers (Q, K, V, O, MLP up, MLP down, LM head; the LSTM's gate
product [x; h] -> 4H with its bias). Everything else runs in float on the host:
embedding lookup, positions, LayerNorm, attention scores, softmax and the weighted sum
over the KV cache, residual adds, the MLP's ReLU (transformer); gate nonlinearities and
the cell update (LSTM); the softmax over the vocabulary for sampling.
`host_ops_per_token` counts them (one op per add, multiply, divide, exp, sqrt, sigmoid or
tanh; a lookup is one op per element).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from eie_jax import eie
from eie_jax.api import on_eie
from eie_jax.compression.layers import compressible_layers
from eie_jax.eie import memory
from eie_jax.utils.cli import UserError


def prune_magnitude(model, sparsity: float) -> None:
    """Prunes every MaskedLinear of `model` (in place) to `sparsity` by magnitude, per layer."""
    for _, layer in compressible_layers(model):
        w = np.abs(np.asarray(layer.kernel[...]))
        keep = round((1 - sparsity) * w.size)
        threshold = np.sort(w, axis=None)[::-1][keep - 1] if keep else np.inf
        layer.set_mask(w >= threshold)


def calibrate(model, ids, base: eie.EIEConfig, *, bias_correction: bool = True) -> dict:
    """Per-layer fixed-point formats from the float model's inputs on ids (B, T):
    {name: (FCLayer, EIEConfig)}, the programs of an `on_eie.EIESession`.

    With bias_correction, each layer's bias also absorbs the mean error of its fixed-point
    product on those inputs (`hardware.bias_corrected`).
    """
    session = on_eie.EIESession(model, config=base)
    session.calibrate(model, [(jnp.asarray(ids),)], bias_correction=bias_correction)
    return session.programs


def sram(session: on_eie.EIESession) -> dict:
    """Whether each layer fits the PEs' SRAMs alone, and whether all of them do at once."""
    encoded = session.encoded()
    cfgs = {name: cfg for name, (_, cfg) in session.programs.items()}
    alone = {}
    for name, enc in encoded.items():
        try:
            alone[name] = memory.plan(enc, cfgs[name].replace(dram_gbps=0.0)).fits
        except UserError:
            alone[name] = False
    have = memory.capacity_bytes(next(iter(cfgs.values())))
    need = {
        s: int(np.max(sum(getattr(e, f"{s}_bytes") for e in encoded.values())))
        for s in memory.SRAMS
    }
    total = sum(int(np.sum(e.spmat_bytes) + np.sum(e.ptr_bytes)) for e in encoded.values())
    return {
        "layers_fit_alone": alone,
        "per_pe_need_all_layers": need,
        "capacity": have,
        "all_fit": all(need[s] <= have[s] for s in ("spmat", "ptr")),
        "weight_bytes": total,
    }


# ------------------------------------------------------------------ host float ops


def host_ops_per_token(model, position: int) -> dict[str, int]:
    """Float operations on the host for one token at `position` (see the module docstring)."""
    if hasattr(model, "blocks"):
        d, s = model.positions[...].shape[1], position + 1
        heads = model.blocks[0].num_heads
        n = len(model.blocks)
        return {
            "embedding + position": 2 * d,
            "layernorm": (2 * n + 1) * 7 * d,  # mean, var (3), normalise (2), scale, shift
            "attention": n * (4 * d * s + heads * s * 4),  # q.k, w.v; scale, exp, sum, divide
            "residual": 2 * n * d,
            "sampling softmax": 3 * model.head.out_features,
        }
    h = model.hidden
    return {
        "embedding": model.embed.embedding[...].shape[1],
        "gates + cell": len(model.cells) * 9 * h,  # 3 sigmoid, 2 tanh, 3 multiply, 1 add
        "sampling softmax": 3 * model.head.out_features,
    }


def _start(model):
    """The empty decoding state: a KV cache (transformer) or None (LSTM: zeros)."""
    return model.init_cache(1) if hasattr(model, "init_cache") else None


def _full(model, state) -> bool:
    """Whether the transformer's cache holds its whole context (learned positions end)."""
    return hasattr(model, "init_cache") and int(state.index) >= model.context


def generate(model, session, prompt_ids, num_chars: int, *, temperature: float, seed: int,
             on_step=None):  # fmt: skip
    """Samples num_chars characters after prompt_ids, batch 1, through the model's own
    `decode` inside `session` (an on_eie.EIESession).

    The transformer keeps a KV cache; when it holds the whole context, the cache is
    rebuilt from the last context // 2 characters (learned positions go no further);
    the LSTM carries its (h, c). The session records figures only for the sampled steps
    (not the prompt or a rebuild); on_step(step) is called before each. Returns (ids,
    the logits of every sampled step).
    """
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in prompt_ids]
    context = getattr(model, "context", None)
    step_ids = lambda i: jnp.asarray([[i]], jnp.int32)  # noqa: E731
    out_logits = []
    with session:
        session.recording = False
        state = _start(model)
        for i in ids[:-1]:  # the prompt, one character at a time
            _, state = model.decode(step_ids(i), state)
        for step in range(num_chars):
            if _full(model, state):
                state = _start(model)
                for i in ids[-(context // 2) : -1]:
                    _, state = model.decode(step_ids(i), state)
            if on_step is not None:
                on_step(step)
            session.recording = True
            logits, state = model.decode(step_ids(ids[-1]), state)
            session.recording = False
            logits = np.asarray(logits[0, -1], np.float64)
            out_logits.append(logits)
            p = np.exp((logits - logits.max()) / temperature)
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return ids[len(prompt_ids) :], np.stack(out_logits)


def teacher_forced(model, session, ids, context: int, batch: int):
    """Next-character logits for ids[:-1] (predicting ids[1:]) through the model's own
    forward inside `session`, and the float model's logits on the same windows:
    ((N, V), (N, V), targets (N,)).

    The transformer reads the fewest equal windows of at most `context` characters, each
    from position 0; the LSTM reads `batch` equal chunks in parallel, each from a zero
    state (a remainder of fewer characters than windows is left out).
    """
    ids = np.asarray(ids)
    n = len(ids) - 1
    count = -(-n // context) if hasattr(model, "init_cache") else batch
    size = n // count
    inputs = jnp.asarray(ids[: count * size].reshape(count, size))
    targets = ids[1 : count * size + 1].reshape(count, size)
    with session:
        ours = np.concatenate(
            [np.asarray(model(inputs[i : i + batch])) for i in range(0, count, batch)]
        )
    theirs = np.asarray(model(inputs))
    v = ours.shape[-1]
    return ours.reshape(-1, v), theirs.reshape(-1, v), targets.reshape(-1)


def nats_per_char(logits, targets) -> float:
    logits = np.asarray(logits, np.float64)
    top = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
    return float(np.mean(logz - logits[np.arange(len(targets)), targets]))
