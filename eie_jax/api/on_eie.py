"""A model's own forward with its compressible products on the EIE model.

    outputs, report = run_on_eie(model, x_test, calibration=x_train[:1000])
    print(report.to_markdown())

`run_on_eie` calls the model's own `__call__` eagerly: first in float on the calibration
batches, every selected product observed (each layer's 16-bit fixed-point formats from
the ranges of its inputs and outputs, `hardware.calibrate`; optionally its bias
correction, `hardware.bias_corrected`), then on the inputs with every selected product
run by `eie.simulate_batch` in EIE's fixed point, bias included; everything else runs on
the host in float. A product called with N activation vectors (a conv: one per output
position) counts N runs of the layer; a layer called more than once (a recurrent cell, a
module shared by two parents) is one entry, its calls aggregated. The figures
(`figures.LayerFigures`, `figures.EIEReport`) are built here from the simulations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from eie_jax import eie
from eie_jax.api.figures import EIEReport, LayerFigures
from eie_jax.compression.compressible import check_rules, match_rule
from eie_jax.compression.layers import compressible_layers
from eie_jax.compression.products import Recorder, intercept
from eie_jax.eie import fc_layer as hardware
from eie_jax.eie import memory
from eie_jax.utils.cli import UserError

# ------------------------------------------------------------------ a session


@dataclasses.dataclass
class _Program:
    """One (layer, geometry) on EIE: the FC layer, its config, encoding and figures."""

    name: str
    fc: hardware.FCLayer
    cfg: eie.EIEConfig | None = None
    encoded: object = None
    bias: object = None
    plan: object = None
    figures: LayerFigures | None = None
    calibration: list = dataclasses.field(default_factory=list)

    def program(self, fc: hardware.FCLayer, cfg: eie.EIEConfig) -> None:
        """Sets the layer as EIE holds it (formats, bias) and encodes it."""
        self.fc, self.cfg = fc, cfg
        self.encoded = eie.encode(fc.codes, fc.codebook, cfg)
        self.bias = jnp.asarray(fc.bias, jnp.float32)
        self.plan = _stream_plan(self.encoded, cfg)
        self.figures = LayerFigures.for_layer(self.name, self.encoded, cfg)


class EIESession:
    """The interceptor that runs a model's selected products on EIE (`products.intercept`).

        session = EIESession(model, config=EIEConfig())
        session.calibrate([(x_calib,)])           # or programs=report.programs
        with session:
            logits = model(x)                      # each selected product on EIE
        report = session.report(num_inputs=len(x))

    backend "eie" runs `eie.simulate_batch` (figures in `LayerFigures`, while `recording`);
    "fixed_point" computes the same fixed point densely (`hardware.fixed_point_forward`),
    the independent oracle. `programs` ({name: (FCLayer, EIEConfig)}, e.g. an earlier
    report's) skips calibration. Eager only: a product called under jit is an error.
    """

    def __init__(self, model, *, config=None, rules=None, rtl=True, chunk=256, record=False,
                 programs=None, backend="eie"):  # fmt: skip
        self.base = eie.EIEConfig() if config is None else config
        if not isinstance(self.base, eie.EIEConfig):
            raise UserError(
                f"run_on_eie: config is a {type(self.base).__name__}; give an EIEConfig"
            )
        if not isinstance(chunk, int) or chunk < 1:
            raise UserError(f"run_on_eie: chunk={chunk!r}; allowed: an int >= 1")
        if backend not in ("eie", "fixed_point"):
            raise UserError(f"EIESession: backend={backend!r}; allowed: 'eie', 'fixed_point'")
        self.selected = _selected_layers(model, rules)
        self.rtl, self.chunk, self.backend = rtl, chunk, backend
        self.given = programs
        self.calibrating = programs is None
        self.recording = True
        self.recorded = {} if record else None
        self._programs: dict = {}  # (id(layer), geometry key) -> _Program, first-call order

    def __enter__(self):
        self._context = intercept(self)
        return self._context.__enter__()

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    # -- what the layers call ---------------------------------------------------------

    def selects(self, layer) -> bool:
        return id(layer) in self.selected

    def observe(self, layer, product, bias) -> None:
        """Calibration pass: keeps the layer's input vectors; the layer goes on in float."""
        self._program(layer, product, bias).calibration.append(self._vectors(layer, product))

    def __call__(self, layer, product, bias):
        prog = self._program(layer, product, bias)
        if prog.cfg is None:
            raise UserError(
                f"run_on_eie: layer {prog.name!r} was not called on the calibration inputs; "
                "calibrate on inputs that reach it"
            )
        x = self._vectors(layer, product)
        out = self._fixed_point(prog, x) if self.backend == "fixed_point" else self._run(prog, x)
        return jnp.asarray(out)

    def _program(self, layer, product, bias) -> _Program:
        key = (id(layer), product.key)
        if key not in self._programs:
            name = self.selected[id(layer)]
            ways = sum(k[0] == id(layer) for k in self._programs)
            codes = np.asarray(product.matrix(np.asarray(layer.codes[...])), np.int32)
            bias = np.zeros(codes.shape[0]) if bias is None else product.bias_vector(bias)
            prog = self._programs[key] = _Program(
                name=name if ways == 0 else f"{name}#{ways + 1}",
                fc=hardware.FCLayer(
                    name=name, codes=codes, codebook=np.asarray(layer.codebook[...], np.float32),
                    bias=np.asarray(bias, np.float32), relu=False,
                ),
            )  # fmt: skip
            if self.given is not None:
                if prog.name not in self.given:
                    raise UserError(f"EIESession: no program for layer {prog.name!r}")
                prog.program(*self.given[prog.name])
        return self._programs[key]

    def _vectors(self, layer, product) -> np.ndarray:
        if isinstance(product.vectors, jax.core.Tracer):
            raise UserError(
                f"run_on_eie: layer {self.selected[id(layer)]!r} was called under a JAX "
                "transform (jit, vmap, scan); run_on_eie runs the model's forward eagerly"
            )
        return np.asarray(product.vectors, np.float32)

    def _keep(self, prog: _Program, **runs) -> None:
        if self.recorded is not None and self.recording:
            self.recorded.setdefault(prog.name, []).append(runs)

    def _fixed_point(self, prog: _Program, x: np.ndarray) -> np.ndarray:
        out = hardware.fixed_point_forward([prog.fc], x, [prog.cfg])
        self._keep(prog, inputs=x, outputs=out)
        return out

    def _run(self, prog: _Program, x: np.ndarray) -> np.ndarray:
        """x (N, K) through the layer on EIE in calls of `chunk` vectors, or of the next
        power of two >= N when that is fewer, zero-padded (a layer compiles once per call
        size: at most log2(chunk) + 1 of them); while `recording`, the runs' figures go
        to the layer's LayerFigures."""
        cfg, enc = prog.cfg, prog.encoded
        prog.figures.calls += self.recording
        size = min(self.chunk, 1 << max(len(x) - 1, 0).bit_length())
        outs = []
        for start in range(0, len(x), size):
            part = x[start : start + size]
            n = len(part)
            xs = jnp.asarray(np.pad(part, ((0, size - n), (0, 0))))
            res = eie.simulate_batch(enc, xs, cfg, relu=False, bias=prog.bias)
            outs.append(np.asarray(res.outputs)[:n])
            if not self.recording:
                continue
            rtl_res = None
            if self.rtl:
                rtl_cfg = cfg.replace(timing="rtl")
                rtl_res = eie.simulate_batch(enc, xs, rtl_cfg, relu=False, bias=prog.bias)
            paper, rtl = prog.figures.add_simulations(
                enc, part, res, cfg, rtl=rtl_res, plan=prog.plan
            )
            runs = dict(inputs=part, outputs=outs[-1], cycles=paper["total_cycles"])
            if rtl is not None:
                runs["rtl_cycles"] = rtl["total_cycles"]
            self._keep(prog, **runs)
        return np.concatenate(outs) if outs else np.zeros((0, enc.shape[0]), np.float32)

    # -- calibration and results -------------------------------------------------------

    def calibrate(self, model, batches, *, headroom_bits: int = 1, bias_correction=False):
        """Runs the model in float on each batch (a tuple of inputs) and fits every
        selected layer's formats to what it saw (`hardware.calibrate`), optionally with
        bias correction (`hardware.bias_corrected`)."""
        if not self.calibrating:
            raise UserError("EIESession.calibrate: the session has its programs already")
        with self:
            for batch in batches:
                model(*batch)
        if not self._programs:
            raise UserError("run_on_eie: the forward called no layer selected to run on EIE")
        for prog in self._programs.values():
            x = np.concatenate(prog.calibration)
            prog.calibration = []
            cfg = hardware.calibrate([prog.fc], x, self.base, headroom_bits)[0]
            fc = hardware.bias_corrected(prog.fc, x, cfg) if bias_correction else prog.fc
            prog.program(fc, cfg)
        self.calibrating = False

    def encoded(self) -> dict:
        """{name: EncodedLayer} of every layer the session has programmed."""
        return {p.name: p.encoded for p in self._programs.values() if p.encoded is not None}

    @property
    def programs(self) -> dict:
        """{name: (FCLayer, EIEConfig)} of every layer as EIE holds it."""
        return {p.name: (p.fc, p.cfg) for p in self._programs.values()}

    def report(self, num_inputs: int) -> EIEReport:
        return EIEReport(
            layers=[p.figures for p in self._programs.values() if p.figures and p.figures.calls],
            num_inputs=num_inputs,
            config=self.base,
            programs=self.programs,
            recorded=_stacked(self.recorded or {}),
        )


def _stream_plan(encoded, cfg):
    """The DRAM streaming plan when the layer does not fit and DRAM is configured."""
    if cfg.dram_gbps <= 0:
        return None
    try:
        plan = memory.plan(encoded, cfg)
    except UserError:  # an Act SRAM too small cannot stream; the figures say it does not fit
        return None
    return None if plan.fits else plan


def _stacked(recorded: dict) -> dict:
    return {
        name: {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}
        for name, runs in recorded.items()
    }


# ------------------------------------------------------------------ the entry points


def _batches(inputs: tuple, batch_size: int | None):
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise UserError(f"run_on_eie: batch_size={batch_size!r}; allowed: an int >= 1 or None")
    n = len(inputs[0])
    step = n if not batch_size else batch_size
    for start in range(0, n, max(step, 1)):
        yield tuple(x[start : start + step] for x in inputs)


def _calibration_batches(calibration, inputs, batch_size):
    if calibration is None:
        return list(_batches(inputs, batch_size))
    if isinstance(calibration, np.ndarray | jax.Array):
        return list(_batches((calibration,), batch_size))
    if isinstance(calibration, tuple):
        return list(_batches(calibration, batch_size))
    if isinstance(calibration, Iterable):
        return [b if isinstance(b, tuple) else (b,) for b in calibration]
    raise UserError(f"run_on_eie: calibration is a {type(calibration).__name__}; "
                    "give an array, a tuple of arrays or an iterable of input batches")  # fmt: skip


def _chosen(model, rules, where: str) -> dict:
    """{id(layer): name} of the compressible layers chosen for EIE: by the first rule that
    matches the name, else by the layer's own choice (make_compressible's `eie`)."""
    rules = check_rules(rules, {"eie"}, where)
    chosen = {}
    for name, layer in compressible_layers(model):
        overrides = match_rule(rules, name)
        if overrides == {}:
            on = getattr(layer, "on_eie", True)
        else:
            on = bool(overrides and overrides.get("eie", True))
        if on:
            chosen[id(layer)] = name
    return chosen


def _selected_layers(model, rules) -> dict:
    """{id(layer): name} of the compressible layers that run on EIE; errors name a layer
    that is selected but not shared (EIE needs codes)."""
    chosen = _chosen(model, rules, "run_on_eie")
    selected = {}
    for name, layer in compressible_layers(model):
        if id(layer) not in chosen:
            continue
        if layer.phase != "shared":
            state = "pruned" if float(jnp.min(layer.mask[...])) == 0.0 else "dense"
            raise UserError(
                f"run_on_eie: layer {name!r} is {state} but not shared; EIE needs codes: call "
                "eie_jax.share_weights first, or leave it on the host with a rule "
                f"({name!r}, {{'eie': False}})"
            )
        selected[id(layer)] = name
    return selected


def _run(session: EIESession, model, inputs, batch_size):
    if not inputs:
        raise UserError("run_on_eie: no inputs; call run_on_eie(model, x, ...)")
    with session:
        outputs = [model(*batch) for batch in _batches(inputs, batch_size)]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outputs)


def run_on_eie(
    model,
    *inputs,
    config: eie.EIEConfig | None = None,
    calibration=None,
    batch_size: int | None = 1000,
    rules=None,
    bias_correction: bool = False,
    headroom_bits: int = 1,
    rtl: bool = True,
    chunk: int = 256,
    record: bool = False,
    programs: dict | None = None,
):
    """Runs `model(*inputs)` with every selected compressible product on the EIE model.

    Args:
      model: a model made compressible (`make_compressible`, or built of
        `layers.MaskedLayer`s) whose selected layers are shared (codes + codebook).
      inputs: the model's positional inputs; their leading axis is split into batches of
        `batch_size` (None: one batch), the outputs concatenated along it.
      config: the EIE design (`EIEConfig()`: the chip's); weight_bits and the fractional
        bits are set per layer by the calibration.
      calibration: inputs to fit each layer's fixed-point formats on: an array, a tuple of
        arrays, or an iterable of input batches (tuples for several inputs). None: the
        inputs themselves.
      rules: [(regex, {"eie": bool})] on layer names, overriding the choice made by
        `make_compressible` (first full match wins).
      bias_correction: each bias absorbs its layer's mean fixed-point error on the
        calibration inputs (as `experiments.generate` does).
      rtl: also count cycles under the reference simulator's timing (a second run).
      chunk: the most activation vectors per EIE call (a larger product is cut into
        chunks of this size; smaller calls are padded to a power of two).
      record: keep each layer's runs in `report.recorded[name]`: inputs (N, K), outputs
        (N, M), cycles (N,) and rtl_cycles (N,).
      programs: {name: (FCLayer, EIEConfig)} of an earlier run (`report.programs`): the
        layers as EIE held them then, no calibration.

    Returns:
      (outputs, EIEReport): the forward's outputs (concatenated over batches) and the
      per-layer figures. `report.programs[name]` holds each layer's FCLayer (codes in W's
      layout, codebook, bias as run) and its calibrated EIEConfig.
    """
    session = EIESession(model, config=config, rules=rules, rtl=rtl, chunk=chunk,
                         record=record, programs=programs)  # fmt: skip
    if programs is None:
        batches = _calibration_batches(calibration, inputs, batch_size)
        session.calibrate(model, batches, headroom_bits=headroom_bits,
                          bias_correction=bias_correction)  # fmt: skip
    outputs = _run(session, model, inputs, batch_size)
    return outputs, session.report(num_inputs=len(inputs[0]))


def run_fixed_point(model, *inputs, programs: dict, batch_size: int | None = 1000, rules=None,
                    record: bool = False):  # fmt: skip
    """The model's own forward with each product of an EIE run (`EIEReport.programs`:
    {name: (FCLayer, EIEConfig)}) in EIE's fixed point, computed densely: the independent
    oracle of `run_on_eie`'s outputs (equal bit for bit). Returns (outputs, recorded):
    recorded[name] holds each layer's inputs (N, K) and outputs (N, M) when `record`."""
    session = EIESession(model, rules=rules, record=record, programs=programs,
                         backend="fixed_point")  # fmt: skip
    outputs = _run(session, model, inputs, batch_size)
    return outputs, _stacked(session.recorded or {})


def record_inputs(model, *inputs, rules=None) -> dict[str, np.ndarray]:
    """{layer name: its input vectors (N, K)} of every compressible product the model's own
    forward calls on `inputs` (run eagerly; a layer called several times: its calls
    concatenated in call order), e.g. the calibration inputs of GPTQ / AWQ. The layers are
    chosen as run_on_eie chooses them (rules, else each layer's own choice) and need not
    be shared."""
    recorder = Recorder(_chosen(model, rules, "record_inputs"))
    with intercept(recorder):
        model(*inputs)
    inputs_by_name: dict = {}
    for name, _, vectors, _ in recorder.calls:
        inputs_by_name.setdefault(name, []).append(np.asarray(vectors, np.float32))
    return {name: np.concatenate(xs) for name, xs in inputs_by_name.items()}
