"""EIE's nine benchmark layers (Han et al., ISCA 2016, Tables III-IV) as synthetic layers.

The paper's matrices come from pruned AlexNet, VGG-16 and NeuralTalk; we do not have them,
so a benchmark layer here is a uniformly random mask at the paper's weight density, random
4-bit codes, and an input vector with the paper's activation density. Real pruned matrices
are less uniform than these, so our timings are a model of the paper's, not a copy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eie_jax.eie.config import EIEConfig
from eie_jax.errors import UserError


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
    codebook = np.concatenate([[0.0], np.sort(0.1 * rng.standard_normal(cfg.codebook_size - 1))])
    x = np.abs(rng.standard_normal(k)) * (rng.random(k) < spec.act_density)
    return codes, codebook.astype(np.float32), x.astype(np.float32)


def nonzeros_by_column(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int32 of the nonzero codes in column-major order (by column, then row).

    np.nonzero in row-major order, then a stable radix sort by column (16-bit keys where
    the columns fit): cheaper than np.nonzero of the transposed matrix, whose copy is the
    slow part for large layers.
    """
    rows, cols = np.nonzero(codes)
    key = cols.astype(np.uint16) if codes.shape[1] <= 2**16 else cols
    order = np.argsort(key, kind="stable")
    return rows[order].astype(np.int32), cols[order].astype(np.int32)
