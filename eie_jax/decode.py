"""Batch-1 text generation with every FC matrix-vector product on the EIE model.

A compressed character LM (every MaskedLinear pruned by magnitude per layer, then a
per-layer 2**bits-entry k-means codebook: `quantize.kmeans.share_model`, post-training)
becomes a dict of `hardware.FCLayer`s. Each layer gets its own 16-bit fixed-point
format from the float model's ranges on calibration text (`hardware.calibrate`, one
layer at a time). The forward passes below are written once over a matrix backend:

  EIEBackend         every product through `eie.simulate` (batch 1) / `simulate_batch`,
                     per-layer hardware figures recorded for batch-1 steps;
  FixedPointBackend  the same fixed point computed densely (`hardware.fixed_point_forward`),
                     the independent oracle: its outputs equal EIE's bit for bit.

EIE runs only the FC layers (Q, K, V, O, MLP up with its ReLU, MLP down, LM head; the
LSTM's gate product [x; h] -> 4H with its bias). Everything else runs in float on the
host: embedding lookup, positions, LayerNorm, attention scores, softmax and the weighted
sum over the KV cache, residual adds (transformer); gate nonlinearities and the cell
update (LSTM); the softmax over the vocabulary for sampling. `host_ops_per_token` counts
them (one op per add, multiply, divide, exp, sqrt, sigmoid or tanh; a lookup is one op
per element).
"""

from __future__ import annotations

import jax
import numpy as np

from eie_jax import eie, hardware, on_eie
from eie_jax.eie import energy, fixed_point, memory
from eie_jax.errors import UserError
from eie_jax.layers import compressible_layers
from eie_jax.quantize import kmeans


def compress(model, sparsity: float, bits: int, seed: int = 0) -> dict[str, hardware.FCLayer]:
    """Prunes every MaskedLinear of `model` (in place) to `sparsity` by magnitude, per layer,
    shares it into 2**bits k-means entries; returns {layer name: FCLayer}."""
    for _, layer in compressible_layers(model):
        w = np.abs(np.asarray(layer.kernel[...]))
        keep = round((1 - sparsity) * w.size)
        threshold = np.sort(w, axis=None)[::-1][keep - 1] if keep else np.inf
        layer.set_mask(w >= threshold)
    kmeans.share_model(model, bits, init="linear", seed=seed)
    return fc_layers(model)


def fc_layers(model) -> dict[str, hardware.FCLayer]:
    """The shared model's MaskedLinears as hardware FCLayers (the MLP up has the ReLU)."""
    return {
        name: hardware.FCLayer(
            name=name,
            codes=np.asarray(layer.hardware_codes()),
            codebook=np.asarray(layer.codebook[...], np.float32),
            bias=np.asarray(layer.bias[...], np.float32),
            relu=name.endswith(".up"),
        )
        for name, layer in compressible_layers(model)
    }


def calibrate(model, layers: dict, ids, base: eie.EIEConfig, *, bias_correction: bool = True):
    """Per-layer fixed-point formats from the float model's inputs on ids (B, T):
    ({name: EIEConfig}, {name: FCLayer}).

    With bias_correction, each layer's bias also absorbs the mean error of its fixed-point
    product on those inputs (`hardware.bias_corrected`).
    """
    record = on_eie.record_inputs(model, jax.numpy.asarray(ids))
    cfgs, out = {}, {}
    for name, layer in layers.items():
        x = record[name]
        cfg = cfgs[name] = hardware.calibrate([layer], x, base)[0]
        if bias_correction:
            layer = hardware.bias_corrected(layer, x, cfg)
        out[name] = layer
    return cfgs, out


class FixedPointBackend:
    """FC products in EIE's fixed point, computed densely: the bit-exact oracle."""

    def __init__(self, layers: dict, cfgs: dict):
        self.layers, self.cfgs = layers, cfgs

    def __call__(self, name: str, x) -> np.ndarray:
        layer = self.layers[name]
        return hardware.fixed_point_forward([layer], x, [self.cfgs[name]])


class EIEBackend:
    """FC products on the EIE model; batch-1 calls append per-layer figures to `self.log`
    when `self.recording` (cycles in both timings, load efficiency, input density,
    energy)."""

    def __init__(self, layers: dict, cfgs: dict):
        self.layers, self.cfgs = layers, cfgs
        self.encoded = {
            n: eie.encode(lay.codes, lay.codebook, cfgs[n]) for n, lay in layers.items()
        }
        self.bias = {n: jax.numpy.asarray(lay.bias) for n, lay in layers.items()}
        self.recording, self.log = False, []

    def __call__(self, name: str, x) -> np.ndarray:
        layer, cfg, enc = self.layers[name], self.cfgs[name], self.encoded[name]
        bias = self.bias[name]
        x = np.asarray(x, np.float32)
        if x.shape[0] > 1:
            res = eie.simulate_batch(enc, jax.numpy.asarray(x), cfg, relu=layer.relu, bias=bias)
            return np.asarray(res.outputs)
        res = eie.simulate(enc, jax.numpy.asarray(x[0]), cfg, relu=layer.relu, bias=bias)
        if self.recording:
            self.log.append(self._figures(name, x[0], res))
        return np.asarray(res.outputs)[None]

    def _figures(self, name, x, res) -> dict:
        cfg, enc = self.cfgs[name], self.encoded[name]
        rtl = cfg.replace(timing="rtl")
        rtl_cycles, _ = eie.simulate_cycles(enc, x, rtl, bias=self.bias[name])
        xq = np.asarray(fixed_point.quantize(x, cfg.act_frac_bits))
        return {
            "layer": name,
            "paper_cycles": int(res.total_cycles),
            "rtl_cycles": int(np.max(rtl_cycles)),
            "load_efficiency": float(res.load_efficiency),
            "density": float(np.mean(xq != 0)),
            "energy_uj": energy.layer_energy(enc, x, res, cfg).energy_uj,
        }

    def sram(self) -> dict:
        """Whether each layer fits the PEs' SRAMs alone, and whether all of them do at once."""
        alone = {}
        for name, enc in self.encoded.items():
            try:
                alone[name] = memory.plan(enc, self.cfgs[name].replace(dram_gbps=0.0)).fits
            except UserError:
                alone[name] = False
        any_cfg = next(iter(self.cfgs.values()))
        have = memory.capacity_bytes(any_cfg)
        need = {
            s: int(np.max(sum(getattr(e, f"{s}_bytes") for e in self.encoded.values())))
            for s in memory.SRAMS
        }
        total = sum(int(np.sum(e.spmat_bytes) + np.sum(e.ptr_bytes)) for e in self.encoded.values())
        return {
            "layers_fit_alone": alone,
            "per_pe_need_all_layers": need,
            "capacity": have,
            "all_fit": all(need[s] <= have[s] for s in ("spmat", "ptr")),
            "weight_bytes": total,
        }


# ------------------------------------------------------------------ host float ops


def _layernorm(ln, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + ln.epsilon)
    return (y * np.asarray(ln.scale[...]) + np.asarray(ln.bias[...])).astype(np.float32)


def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(np.float32)


def transformer_forward(model, fc, ids, cache=None):
    """ids (B, T) -> (logits (B, T, V), cache): positions start after the cache.

    cache: None or one (keys, values) pair of (B, S, d) arrays per block; the returned
    cache holds S + T positions. Every FC product goes through fc(name, (N, K)).
    """
    b, t = ids.shape
    start = 0 if cache is None else cache[0][0].shape[1]
    x = np.asarray(model.embed.embedding[...])[ids]
    x = (x + np.asarray(model.positions[...])[start : start + t]).astype(np.float32)
    d = x.shape[-1]
    flat = lambda name, h: fc(name, h.reshape(b * t, -1))  # noqa: E731
    new_cache = []
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        h = _layernorm(block.ln1, x)
        q, k, v = (flat(f"{p}.{n}", h).reshape(b, t, d) for n in ("q", "k", "v"))
        if cache is not None:
            k = np.concatenate([cache[i][0], k], axis=1)
            v = np.concatenate([cache[i][1], v], axis=1)
        new_cache.append((k, v))
        a = _attention(q, k, v, block.num_heads, start)
        x = x + flat(f"{p}.o", a).reshape(b, t, d)
        u = flat(f"{p}.up", _layernorm(block.ln2, x))
        x = x + fc(f"{p}.down", u).reshape(b, t, d)
    return flat("head", _layernorm(model.ln_f, x)).reshape(b, t, -1), new_cache


def _attention(q, k, v, heads, start):
    """Causal attention of queries at positions start.. over keys 0..S+T-1, on the host."""
    b, t, d = q.shape
    s = k.shape[1]
    split = lambda y: y.reshape(b, -1, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    allowed = np.arange(s)[None, :] <= start + np.arange(t)[:, None]
    scores = np.where(allowed, scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return (w @ split(v)).transpose(0, 2, 1, 3).reshape(b, t, d).astype(np.float32)


def lstm_forward(model, fc, ids, state=None):
    """ids (B, T) -> (logits (B, T, V), state): one step at a time from state [(h, c)]."""
    b, t = ids.shape
    hidden = model.hidden
    if state is None:
        zeros = np.zeros((b, hidden), np.float32)
        state = [(zeros, zeros)] * len(model.cells)
    emb = np.asarray(model.embed.embedding[...])
    logits = []
    for step in range(t):
        x = emb[ids[:, step]]
        new_state = []
        for i, (h, c) in enumerate(state):
            gates = fc(f"cells.{i}", np.concatenate([x, h], axis=-1))
            gi, gf, gg, go = np.split(gates, 4, axis=-1)
            c = _sigmoid(gf) * c + _sigmoid(gi) * np.tanh(gg)
            h = (_sigmoid(go) * np.tanh(c)).astype(np.float32)
            new_state.append((h, c))
            x = h
        state = new_state
        logits.append(fc("head", x))
    return np.stack(logits, axis=1), state


FORWARD = {"char_transformer": transformer_forward, "char_lstm": lstm_forward}


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


def generate(model, fc, prompt_ids, num_chars: int, *, temperature: float, seed: int, on_step=None):
    """Samples num_chars characters after prompt_ids, batch 1, through `fc`.

    The transformer keeps a KV cache; when it reaches the model's context, the cache is
    rebuilt from the last context // 2 characters (learned positions go no further);
    the LSTM carries its (h, c). An EIEBackend records only the sampled steps (not the
    prompt or a rebuild); on_step(step) is called before each. Returns (ids, the logits
    of every sampled step).
    """
    kind = "char_transformer" if hasattr(model, "blocks") else "char_lstm"
    forward = FORWARD[kind]
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in prompt_ids]
    context = getattr(model, "context", None)
    state = None

    def record(on: bool):
        if hasattr(fc, "recording"):
            fc.recording = on

    record(False)
    for i in ids[:-1]:  # the prompt, one character at a time
        _, state = forward(model, fc, np.array([[i]]), state)
    out_logits = []
    for step in range(num_chars):
        if context is not None and state is not None and state[0][0].shape[1] >= context:
            record(False)
            state = None
            for i in ids[-(context // 2) : -1]:
                _, state = forward(model, fc, np.array([[i]]), state)
        if on_step is not None:
            on_step(step)
        record(True)
        logits, state = forward(model, fc, np.array([[ids[-1]]]), state)
        record(False)
        logits = logits[0, -1].astype(np.float64)
        out_logits.append(logits)
        p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return ids[len(prompt_ids) :], np.stack(out_logits)


def teacher_forced(model, fc, ids, context: int, batch: int):
    """Next-character logits for ids[:-1] (predicting ids[1:]) through fc, and the float
    model's own logits on the same windows: ((N, V), (N, V), targets (N,)).

    The transformer reads the fewest equal windows of at most `context` characters, each
    from position 0; the LSTM reads `batch` equal chunks in parallel, each from a zero
    state (a remainder of fewer characters than windows is left out).
    """
    ids = np.asarray(ids)
    kind = "char_transformer" if hasattr(model, "blocks") else "char_lstm"
    n = len(ids) - 1
    count = -(-n // context) if kind == "char_transformer" else batch
    size = n // count
    inputs = ids[: count * size].reshape(count, size)
    targets = ids[1 : count * size + 1].reshape(count, size)
    ours = np.concatenate(
        [FORWARD[kind](model, fc, inputs[i : i + batch])[0] for i in range(0, count, batch)]
    )
    theirs = np.asarray(model(jax.numpy.asarray(inputs)))
    v = ours.shape[-1]
    return ours.reshape(-1, v), theirs.reshape(-1, v), targets.reshape(-1)


def nats_per_char(logits, targets) -> float:
    logits = np.asarray(logits, np.float64)
    top = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
    return float(np.mean(logz - logits[np.arange(len(targets)), targets]))
