"""EIE's nine benchmark layers (Han et al., ISCA 2016, Tables III-IV) as synthetic layers.

The paper's matrices come from pruned AlexNet, VGG-16 and NeuralTalk; we do not have them,
so a benchmark layer here is a uniformly random mask at the paper's weight density, random
4-bit codes, and an input vector with the paper's activation density. Real pruned matrices
are less uniform than these, so our timings are a model of the paper's, not a copy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax.eie import config as config_lib
from eie_jax.eie.config import EIEConfig
from eie_jax.utils import schema
from eie_jax.utils.cli import UserError


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """A layer for the benchmarks and sweeps: W has out_features rows, in_features columns.

    The Table III layers carry the paper's times; a layer of one's own (`own_spec`) has
    none.
    """

    name: str
    in_features: int
    out_features: int
    weight_density: float
    act_density: float
    paper_actual_us: float | None = None  # Table IV, 64 PEs at 800 MHz; None: not in it
    paper_theoretical_us: float | None = None  # Table IV

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)


TABLE_III = (
    LayerSpec("Alex-6", 9216, 4096, 0.09, 0.351, 30.3, 28.1),
    LayerSpec("Alex-7", 4096, 4096, 0.09, 0.353, 12.2, 11.7),
    LayerSpec("Alex-8", 4096, 1000, 0.25, 0.375, 9.9, 8.9),
    LayerSpec("VGG-6", 25088, 4096, 0.04, 0.183, 34.4, 28.1),
    LayerSpec("VGG-7", 4096, 4096, 0.04, 0.375, 8.7, 7.9),
    LayerSpec("VGG-8", 4096, 1000, 0.23, 0.411, 8.4, 7.3),
    LayerSpec("NT-We", 4096, 600, 0.10, 1.0, 8.0, 5.2),
    LayerSpec("NT-Wd", 600, 8791, 0.11, 1.0, 13.9, 13.0),
    LayerSpec("NT-LSTM", 1201, 2400, 0.10, 1.0, 7.5, 6.5),
)

LAYERS = {spec.name: spec for spec in TABLE_III}


# ------------------------------------------------------------------ config schemas
# Of the entry points that run the Table III layers: experiments.bench_eie
# (configs/eie_benchmarks.py), experiments.fig_eie_vs_cpu and experiments.bench_crossover.

_NAMES = tuple(LAYERS)
_LAYER_LIST = schema.sequence(list(_NAMES), schema.choice("Alex-7", _NAMES), unique=True)
_DEPTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
_CHIP = ("num_pes", "fifo_depth", "index_bits", "weight_bits", "act_frac_bits",
         "weight_frac_bits", "clock_mhz")  # fmt: skip

BENCH_EIE = schema.Section(
    dict(
        layers=_LAYER_LIST,
        seed=schema.integer(0, lo=0),
        eie=config_lib.section(*_CHIP),  # the chip (ISCA 2016 Sec. V)
        repeats=schema.integer(5, lo=1),  # timings: medians of this many runs, compiled
        batch_layer=schema.choice("Alex-7", _NAMES),
        batch_size=schema.integer(64, lo=1),
        fifo_depths=schema.sequence(_DEPTHS, schema.integer(8, lo=1)),  # Fig. 8
        pe_counts=schema.sequence(_DEPTHS, schema.integer(64, lo=1)),  # Fig. 11
    )
)
FIG_EIE_VS_CPU = schema.Section(
    dict(
        layers=_LAYER_LIST,
        seed=schema.integer(0, lo=0),
        # A layer that does not fit the SRAM streams its weights from DRAM at dram_gbps.
        eie=config_lib.section(*_CHIP, dram_gbps=12.8),
    )
)
CROSSOVER = schema.Section(
    dict(
        size=schema.integer(4096, lo=1),  # a size x size weight matrix, batch-1 input
        densities=schema.sequence(
            [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5], schema.number(0.1, 0, 1, above=True)
        ),
        repeats=schema.integer(20, lo=1),  # medians of this many runs after compilation
        seed=schema.integer(0, lo=0),
        eie=config_lib.section("num_pes", "fifo_depth", "index_bits"),
    )
)


def get_spec(name: str) -> LayerSpec:
    if name not in LAYERS:
        raise UserError(f"layer={name!r}: unknown; allowed: {sorted(LAYERS)}")
    return LAYERS[name]


def own_spec(name: str, fields, where: str = "layer") -> LayerSpec:
    """A layer of one's own: fields = {out_features, in_features, weight_density,
    act_density}, each checked (UserError naming `where.field` and the value)."""
    fields = dict(fields)
    allowed = ("out_features", "in_features", "weight_density", "act_density")
    for key in fields:
        if key not in allowed:
            raise UserError(f"{where}.{key}: unknown field; allowed: {list(allowed)}")
    for key in allowed:
        if key not in fields:
            raise UserError(f"{where}.{key}: missing; a layer needs {list(allowed)}")
        value = fields[key]
        if key.endswith("features"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            rule = "an int >= 1"
        else:
            ok = isinstance(value, int | float) and 0.0 < value <= 1.0
            rule = "a fraction in (0, 1]"
        if not ok:
            raise UserError(f"{where}.{key}={value!r}: must be {rule}")
    if name in LAYERS:
        raise UserError(f"{where}: {name!r} is a Table III layer; give your layer another name")
    return LayerSpec(name, **{k: fields[k] for k in allowed})


def synthetic_layer(
    spec: LayerSpec, seed: int = 0, cfg: EIEConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random codes (M, K), a codebook and an input x (K,) at the spec's densities.

    Each weight survives independently with probability weight_density and gets a code
    drawn uniformly from 1..2**weight_bits - 1; each activation is nonzero with
    probability act_density (magnitudes from |N(0, 1)|, post-ReLU-like).
    """
    cfg = cfg or EIEConfig()
    rng = np.random.default_rng(seed)
    m, k = spec.shape
    keep = rng.random((m, k), dtype=np.float32) < spec.weight_density
    # uint8 holds codes up to 255 (weight_bits=8) and draws what int8 drew below 128.
    codes = rng.integers(1, cfg.codebook_size, (m, k), dtype=np.uint8)
    codes *= keep  # in place: the dropped weights' codes become 0
    return (codes, *_codebook_and_input(rng, spec, cfg))


def _codebook_and_input(rng, spec: LayerSpec, cfg: EIEConfig):
    """synthetic_layer's draws after the codes: the codebook, then the input x."""
    codebook = np.concatenate([[0.0], np.sort(0.1 * rng.standard_normal(cfg.codebook_size - 1))])
    x = np.abs(rng.standard_normal(spec.in_features)) * (
        rng.random(spec.in_features) < spec.act_density
    )
    return codebook.astype(np.float32), x.astype(np.float32)


# Raw 64-bit draws per block of synthetic_nonzeros: 512 KiB, reused by the allocator.
_RAW_BLOCK = 1 << 16


def synthetic_nonzeros(
    spec: LayerSpec, seed: int = 0, cfg: EIEConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """synthetic_layer's layer without its codes: (rows, cols, codebook, x), bit for bit.

    rows, cols: the nonzeros in column-major order, as `nonzeros_by_column` of
    synthetic_layer(spec, seed, cfg)'s codes; codebook and x: the same arrays. For sweeps,
    which need where the weights are, not their codes (VGG-6: 0.4 s instead of 1.7 s).
    It replays the generator synthetic_layer uses (NumPy's PCG64 Generator):
    - a float32 uniform is (u >> 8) * 2**-24 of one 32-bit half u of a raw 64-bit draw
      (low half first), so `keep` is u < a threshold, compared on the raw draws in blocks;
    - `integers(1, codebook_size, uint8)` takes the bytes of 32-bit draws (low byte first)
      and rejects a byte by Lemire's test, which depends on the byte alone: counting the
      accepted bytes finds how many 32-bit draws the codes took, without drawing them;
    - the codebook and x use 64-bit draws alone, so they follow from the generator
      advanced past both.
    A test checks every output against synthetic_layer + nonzeros_by_column.
    """
    cfg = cfg or EIEConfig()
    m, k = spec.shape
    size = m * k
    bitgen = np.random.PCG64(seed)  # what np.random.default_rng(seed) holds
    limit = _uniform_limit(spec.weight_density)
    raws = (size + 1) // 2  # the float32 draws: two per raw draw
    found, tail = [], np.zeros(0, np.uint32)
    for start in range(0, raws, _RAW_BLOCK):
        halves = _halves(bitgen.random_raw(min(_RAW_BLOCK, raws - start)))
        if start + _RAW_BLOCK >= raws and size % 2:  # the last high half is not a weight
            halves, tail = halves[:-1], halves[-1:]
        found.append(np.flatnonzero(halves < limit) + 2 * start)
    flat = np.concatenate(found) if found else np.zeros(0, np.int64)
    used = size + _code_draws(bitgen, tail, size, cfg.codebook_size)  # 32-bit draws
    rng = np.random.Generator(np.random.PCG64(seed))
    rng.bit_generator.advance((used + 1) // 2)
    rows, cols = _by_column(*np.divmod(flat, k), k)
    return (rows, cols, *_codebook_and_input(rng, spec, cfg))


def _halves(raw: np.ndarray) -> np.ndarray:
    """The 32-bit halves of raw 64-bit draws in the order NumPy uses them: low, then high."""
    return raw.astype("<u8", copy=False).view("<u4")


def _uniform_limit(density) -> int:
    """L with (u32 < L) == (the float32 uniform from u32 < density), for every u32.

    The float32 is (u32 >> 8) * 2**-24; T counts the 24-bit values whose float compares
    below density exactly as synthetic_layer's array comparison does (same dtypes).
    """
    lo, hi = 0, 1 << 24  # the count T: values below lo compare true, from hi on false
    while lo < hi:
        mid = (lo + hi) // 2
        below = (np.array([mid], np.float32) * np.float32(2**-24) < density)[0]
        lo, hi = (mid + 1, hi) if below else (lo, mid)
    return lo << 8


def _code_draws(bitgen, tail: np.ndarray, count: int, codebook_size: int) -> int:
    """32-bit draws `integers(1, codebook_size, count, dtype=uint8)` takes from bitgen,
    whose next 32-bit draws are tail then its raw draws' halves."""
    span = codebook_size - 1  # values 1 .. codebook_size - 1
    if span == 1 or count == 0:
        return 0  # a single value: NumPy draws nothing
    # Lemire on a byte b: m = b * span; rejected iff (m & 0xFF) < (256 - span) % span.
    span8, threshold = np.uint8(span), np.uint8((256 - span) % span)
    used, accepted = 0, 0
    while True:
        # Each raw draw holds 8 bytes: draw no more than the bytes still wanted need.
        raws = min(_RAW_BLOCK, max(1, (count - accepted - 4 * len(tail)) // 8))
        words = np.concatenate([tail, _halves(bitgen.random_raw(raws))])
        tail = np.zeros(0, np.uint32)
        data = words.astype("<u4", copy=False).view(np.uint8)  # low byte first
        rejected = (data * span8) < threshold  # the uint8 product is m & 0xFF
        if accepted + 4 * len(words) - np.count_nonzero(rejected) < count:
            used += len(words)
            accepted += 4 * len(words) - np.count_nonzero(rejected)
            continue
        # The word holding the count-th accepted byte is the last one taken.
        per_word = 4 - rejected.reshape(-1, 4).sum(axis=1)
        return used + int(np.searchsorted(np.cumsum(per_word), count - accepted)) + 1


def nonzeros_by_column(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int32 of the nonzero codes in column-major order (by column, then row).

    np.nonzero in row-major order, then a stable radix sort by column (16-bit keys where
    the columns fit): cheaper than np.nonzero of the transposed matrix, whose copy is the
    slow part for large layers.
    """
    return _by_column(*np.nonzero(codes), codes.shape[1])


def _by_column(rows, cols, num_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major (rows, cols) as int32 in column-major order: a stable radix sort by
    column (16-bit keys where the columns fit)."""
    order = np.argsort(cols.astype(np.uint16) if num_cols <= 2**16 else cols, kind="stable")
    return rows[order].astype(np.int32), cols[order].astype(np.int32)
