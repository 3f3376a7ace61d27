"""EIE design points (Han et al., ISCA 2016, Sec. VI: FIFO depth, PE count, index width).

A point is one layer on one EIEConfig. The layer is synthetic (`benchmarks.synthetic_layer`,
its nonzeros drawn by `benchmarks.synthetic_nonzeros`):
a Table III name, or a layer of one's own declared in `config.layers`:

    config = eie_base_config(arg, layers=dict(
        my_fc=dict(out_features=2048, in_features=1024, weight_density=0.1, act_density=0.5)))
    config.layer = 'my_fc'   # or sweep('layer', ['my_fc', 'Alex-7']),
                             # or sweep('layers.my_fc.weight_density', [0.05, 0.1, 0.2])

Entry counts are computed on the host once per (layer, PE count, index_bits) the sweep
needs, all of them before the first point, a thread per core
(`eie.encode.entry_counts_by_column`); synthetic layers are kept for the next sweep of the
process (the last LAYER_CACHE_SIZE); the cycles of all points come from
`batching.iter_cycles`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from eie_jax import eie
from eie_jax.api.figures import LayerFigures
from eie_jax.compression import sparse_format
from eie_jax.compression.sparse_format import entry_counts_by_column, thread_map
from eie_jax.eie import benchmarks
from eie_jax.sweep.axes import Overrides, product, sweep
from eie_jax.sweep.batching import RtlInputs, iter_cycles
from eie_jax.utils import schema, workdir
from eie_jax.utils.cli import UserError

# What `eie_metrics` returns for each point: the fields a plot's y may name.
METRICS = (
    "total_cycles", "time_us", "load_efficiency", "busy_entries", "real_work_ratio",
    "num_entries", "num_padding", "padding_share", "storage_bits", "broadcasts",
)  # fmt: skip
# Synthetic layers (nonzeros and input) kept between sweeps of one process: a Fig. 8 and a
# Fig. 11 sweep draw the same nine layers.
LAYER_CACHE_SIZE = 9
_LAYERS: collections.OrderedDict = collections.OrderedDict()


def section() -> schema.Section:
    """The schema of an EIE design-point sweep's base config (`eie_base_config`)."""
    S, integer, number = schema.Section, schema.integer, schema.number
    own_layer = S(
        dict(
            out_features=integer(1, lo=1),
            in_features=integer(1, lo=1),
            weight_density=number(0.1, 0, 1, above=True),
            act_density=number(1.0, 0, 1, above=True),
        )
    )
    return S(
        dict(
            runner=schema.choice("eie", ("eie",)),
            layer=schema.string("Alex-7", doc="a Table III name or a key of layers"),
            layers=schema.Table(own_layer, doc="layers of one's own (optional)"),
            seed=integer(0, lo=0),
            layer_scale=number(1.0, 0, above=True, doc="shrinks both dimensions"),
            counts_from=schema.choice("counts", ("counts", "encode")),
            eie=eie.config.FIELDS,
            max_batch_elements=integer(1 << 25, lo=1),
            plots=PLOTS,
        )
    )


PLOTS = schema.sequence([], schema.anything({}, "a plot (sweep.PLOT_OPTIONS)"), nonempty=False)


def eie_base_config(arg=None, *, layers=None, **eie_fields) -> ml_collections.ConfigDict:
    """Base config of an EIE design-point sweep: one layer on one EIEConfig.

    Fields: layer (a Table III name or a key of `layers`), layers (only when given: layers
    of one's own, name -> {out_features, in_features, weight_density, act_density}), seed
    (of the synthetic layer), layer_scale (shrinks both dimensions, for smoke runs; the
    shapes simulated are logged), counts_from ('counts': entry counts alone, or 'encode':
    eie.encode), eie (the EIEConfig fields, eie_fields overriding the defaults),
    max_batch_elements (entry counts per compiled call), plots. arg='smoke' shrinks the
    layers to 5 % of each dimension.
    """
    if arg not in (None, "smoke"):
        raise UserError(f"config arg={arg!r}: allowed: None or 'smoke'")
    config = ml_collections.ConfigDict()
    config.runner = "eie"
    config.layer = "Alex-7"
    if layers:
        config.layers = {name: dict(fields) for name, fields in layers.items()}
        config.layer = next(iter(layers))
    config.seed = 0
    config.layer_scale = 1.0
    config.counts_from = "counts"
    config.eie = ml_collections.ConfigDict(dataclasses.asdict(eie.EIEConfig()))
    config.eie.update(eie_fields)
    config.max_batch_elements = 1 << 25
    config.plots = []
    if arg == "smoke":
        config.layer_scale = 0.05
    return config


def table_iii_sweep(
    field: str, values, arg=None, *, smoke_values, smoke_layers=("Alex-7", "NT-We")
):
    """The nine EIE Table III layers x values of one field (two layers, fewer values for smoke)."""
    layers = [spec.name for spec in benchmarks.TABLE_III]
    if arg == "smoke":
        layers, values = list(smoke_layers), smoke_values
    return product(sweep("layer", layers), sweep(field, list(values)))


def eie_config_of(config: ml_collections.ConfigDict) -> eie.EIEConfig:
    """The validated EIEConfig of one point (the error names the bad field)."""
    try:
        return eie.EIEConfig(**config.eie.to_dict())
    except (TypeError, ValueError) as e:
        raise UserError(f"config.eie: {e}") from e


def layer_spec_of(config: ml_collections.ConfigDict) -> benchmarks.LayerSpec:
    """config.layer's spec: a layer of `config.layers`, else a Table III layer."""
    own = config.get("layers", None) or {}
    if config.layer in own:
        return benchmarks.own_spec(config.layer, own[config.layer], f"config.layers.{config.layer}")
    if config.layer not in benchmarks.LAYERS:
        allowed = sorted(own) + [spec.name for spec in benchmarks.TABLE_III]
        raise UserError(
            f"config.layer={config.layer!r}: unknown; allowed: {allowed} (declare a layer of "
            "your own in config.layers)"
        )
    return benchmarks.LAYERS[config.layer]


@dataclasses.dataclass(frozen=True)
class EIEPoint:
    """Host-side inputs of one design point: counts over its broadcast columns only."""

    cfg: eie.EIEConfig
    counts: np.ndarray  # (N, K_active)
    program: LayerFigures  # the layer's program figures (entries, padding, SRAM), no runs
    active: np.ndarray  # (K,) which inputs are broadcast
    real_active: int  # real (unpadded) entries in broadcast columns
    rtl: RtlInputs | None = None  # cfg.timing == 'rtl' only


class EIEHost:
    """Caches synthetic layers and entry counts so each (layer, N, index_bits) is done once.

    `plan(configs)` before the first `point` draws the layers and counts the entries of
    every point at once, a thread per core; a point not planned is counted when asked for.
    log: where the shape each layer is simulated at goes (once per layer).
    """

    def __init__(self, log: Callable[[str], None] | None = None):
        self.log = log or (lambda msg: logging.info("%s", msg))
        self.counts, self.active, self.wanted = {}, {}, collections.defaultdict(set)
        self.sliced, self.programs = {}, {}
        self.logged = set()

    def plan(self, configs: Sequence[ml_collections.ConfigDict]):
        """Notes the PE counts each (layer, index_bits) will be asked for, draws the layers
        not yet kept, and counts the entries of each (layer, PE count, index_bits) the
        points need, each a thread per core, biggest first (NumPy's generators, sorts and
        gathers release the GIL)."""
        self.draw(self.note(configs))
        self.count()

    def note(self, configs) -> list:
        """Notes the PE counts of each (layer, index_bits); returns the layer keys."""
        keys = []
        for config in configs:
            cfg, layer_key = self._keys(config)
            if config.counts_from == "counts":
                self.wanted[(layer_key, cfg.index_bits)].add(cfg.num_pes)
            keys.append(layer_key)
        return keys

    def draw(self, keys):
        """Draws the layers of keys not yet kept (at most LAYER_CACHE_SIZE), biggest first."""
        missing = [key for key in dict.fromkeys(keys) if key not in _LAYERS][:LAYER_CACHE_SIZE]
        missing.sort(key=lambda key: -key[0].in_features * key[0].out_features)
        for key, layer in zip(missing, thread_map(_draw_layer, missing), strict=True):
            _keep_layer(key, layer)

    def count(self):
        """Entry counts of every noted (layer, PE count, index_bits) of a kept layer."""
        tasks = [
            (layer_key, n, bits)
            for (layer_key, bits), pes in self.wanted.items()
            for n in pes
            if layer_key in _LAYERS and (layer_key, n, bits, "counts") not in self.counts
        ]
        tasks.sort(key=lambda task: (-len(_LAYERS[task[0]][2]), task[1]))  # most nonzeros first
        for (layer_key, n, bits), counts in zip(tasks, thread_map(_count, tasks), strict=True):
            self.counts[(layer_key, n, bits, "counts")] = counts

    def _keys(self, config):
        cfg = eie_config_of(config)
        if not config.layer_scale > 0:
            raise UserError(f"config.layer_scale={config.layer_scale!r}: must be > 0")
        if config.counts_from not in ("counts", "encode"):
            raise UserError(
                f"config.counts_from={config.counts_from!r}: must be 'counts' or 'encode'"
            )
        spec = layer_spec_of(config)
        return cfg, (spec, config.seed, config.layer_scale, cfg.weight_bits)

    def point(self, config: ml_collections.ConfigDict) -> EIEPoint:
        cfg, layer_key = self._keys(config)
        codebook, x, _, cols, shape = self.layer(layer_key)
        count_key = (layer_key, cfg.num_pes, cfg.index_bits, config.counts_from)
        if count_key not in self.counts:
            if config.counts_from == "encode":
                spec, seed, _, _ = layer_key
                codes, _, _ = benchmarks.synthetic_layer(_scaled(spec, layer_key[2]), seed, cfg)
                layer = eie.encode(codes, codebook, cfg)
                self.counts[count_key] = (np.asarray(layer.counts), layer.num_padding)
            else:  # not planned (or its layer was dropped from the cache and redrawn)
                self.wanted[(layer_key, cfg.index_bits)].add(cfg.num_pes)
                self.count()
        counts, num_padding = self.counts[count_key]
        active_key = (layer_key, cfg.act_frac_bits)
        if active_key not in self.active:
            # Broadcast iff the quantised activation is nonzero (the LNZD skips the rest).
            # fixed_point.quantize in NumPy (float32, round half to even): no device call.
            active = np.round(np.float32(x) * np.float32(1 << cfg.act_frac_bits)) != 0
            per_col = np.bincount(cols, minlength=shape[1])
            self.active[active_key] = (active, int(per_col[active].sum()))
        active, real_active = self.active[active_key]
        # One array of broadcast-column counts per (counts, input): points that differ in
        # FIFO depth alone share it.
        sliced_key = (count_key, active_key)
        if sliced_key not in self.sliced:
            self.sliced[sliced_key] = counts[:, active]
        rtl = None
        if cfg.timing == "rtl":
            # Synthetic layers have no bias: the bias item carries no entries.
            rtl = RtlInputs(
                columns=np.flatnonzero(active).astype(np.int32),
                bias_counts=np.zeros(cfg.num_pes, np.int32),
                bias_col=int(eie.bias_column(shape[1], cfg.num_pes)),
            )
        if (count_key, cfg) not in self.programs:
            nonzeros = int(counts.sum()) - num_padding
            self.programs[(count_key, cfg)] = LayerFigures.from_counts(
                config.layer, counts, cfg, shape=shape, nonzeros=nonzeros
            )
        return EIEPoint(
            cfg=cfg,
            counts=self.sliced[sliced_key],
            program=self.programs[(count_key, cfg)],
            active=active,
            real_active=real_active,
            rtl=rtl,
        )

    def layer(self, layer_key):
        """(codebook, x, rows, cols, shape) of a layer key (`note` returns them), nonzeros
        in column-major order; drawn unless kept."""
        spec, seed, scale, weight_bits = layer_key
        scaled = _scaled(spec, scale)
        if layer_key not in self.logged:
            self.logged.add(layer_key)
            m, k = scaled.shape
            note = (
                ""
                if scale == 1
                else f" (layer_scale {scale:g} of {spec.shape[0]} x {spec.shape[1]})"
            )
            self.log(
                f"sweep: layer {spec.name} simulated as {m} x {k}{note}, weight density "
                f"{spec.weight_density:g}, activation density {spec.act_density:g}, seed {seed}"
            )
        if layer_key in _LAYERS:
            _LAYERS.move_to_end(layer_key)
            return _LAYERS[layer_key]
        return _keep_layer(layer_key, _draw_layer(layer_key))


def clear_layers():
    """Forgets the kept synthetic layers (the next sweep draws its layers afresh)."""
    _LAYERS.clear()


def _draw_layer(layer_key):
    """(codebook, x, rows, cols, shape) of a synthetic layer, nonzeros column-major."""
    spec, seed, scale, weight_bits = layer_key
    cfg = eie.EIEConfig(weight_bits=weight_bits)
    scaled = _scaled(spec, scale)
    rows, cols, codebook, x = benchmarks.synthetic_nonzeros(scaled, seed, cfg)
    return codebook, x, rows, cols, scaled.shape


def _count(task):
    """(counts, num_padding) of a kept layer on n PEs: task = (layer_key, n, index_bits)."""
    layer_key, n, index_bits = task
    _, _, rows, cols, shape = _LAYERS[layer_key]
    return entry_counts_by_column(rows, cols, shape, [n], index_bits)[0]


def _keep_layer(layer_key, layer):
    """Caches a drawn layer (the last LAYER_CACHE_SIZE are kept) and returns it."""
    _LAYERS[layer_key] = layer
    while len(_LAYERS) > LAYER_CACHE_SIZE:
        _LAYERS.popitem(last=False)
    return layer


def _scaled(spec: benchmarks.LayerSpec, scale: float) -> benchmarks.LayerSpec:
    return dataclasses.replace(
        spec,
        in_features=max(1, round(spec.in_features * scale)),
        out_features=max(1, round(spec.out_features * scale)),
    )


def eie_metrics(point: EIEPoint, pe_cycles, pe_busy) -> dict:
    """The metrics of one design point (ISCA 2016, Sec. VI and Figs. 8, 11-13), from its
    `LayerFigures` after the run.

    total_cycles = max_k pe_cycles; load_efficiency = mean(pe_busy) / total_cycles;
    real_work_ratio = real entries / all entries processed (padding is the difference);
    storage_bits = entries * (weight_bits + index_bits) + N * (K + 1) * 16-bit pointers.
    """
    cfg, fig = (
        point.cfg,
        dataclasses.replace(point.program, energy_uj=dict(point.program.energy_uj)),
    )
    fig.add_timing(np.asarray(pe_cycles)[None], np.asarray(pe_busy)[None], point.active[None])
    return {
        "total_cycles": fig.cycles,
        "time_us": fig.time_us,
        "load_efficiency": fig.load_efficiency,
        "busy_entries": fig.busy,
        "real_work_ratio": point.real_active / fig.busy if fig.busy > 0 else 1.0,
        "num_entries": fig.entries,
        "num_padding": fig.padding,
        "padding_share": fig.padding / max(fig.entries, 1),
        "storage_bits": fig.entries * (cfg.weight_bits + cfg.index_bits)
        + cfg.num_pes * (fig.shape[1] + 1) * sparse_format.POINTER_BITS,
        "broadcasts": int(point.counts.shape[1]),
    }


def prepare_eie_points(
    config: ml_collections.ConfigDict,
    points: Sequence[Overrides],
    log: Callable[[str], None] | None = None,
) -> list[EIEPoint]:
    """Host inputs of each point (validated; counts computed once per layer and N)."""
    host = EIEHost(log)
    configs = [workdir.apply_overrides(config, p) for p in points]
    host.plan(configs)
    return [host.point(c) for c in configs]


def iter_eie_metrics(
    config: ml_collections.ConfigDict,
    points: Sequence[Overrides],
    *,
    devices: Sequence[jax.Device] | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[list[tuple[int, dict]]]:
    """The metrics of every design point, chunk by chunk as they finish: [(i, metrics)].

    The one code path from a design point to its numbers: the sweep runner and the
    benchmarks both go through it.
    """
    prepared = prepare_eie_points(config, points, log)
    for chunk, cycles, busy in iter_cycles(
        [p.counts for p in prepared],
        [p.cfg.fifo_depth for p in prepared],
        rtl=[p.rtl for p in prepared],
        devices=devices,
        max_batch_elements=config.max_batch_elements,
    ):
        yield [(i, eie_metrics(prepared[i], cycles[j], busy[j])) for j, i in enumerate(chunk)]


def evaluate_eie_points(config, points, **kwargs) -> list[dict]:
    """iter_eie_metrics collected: the metrics of each point, in point order."""
    out = [None] * len(points)
    for chunk in iter_eie_metrics(config, points, **kwargs):
        for i, m in chunk:
            out[i] = m
    return out
