"""The CPU, GPU and mobile-GPU baselines of EIE's Figs. 6 and 7 (ISCA 2016, Tables IV-V).

Batch-1 times per layer in microseconds, in Table III's layer order, and each platform's
power; Figs. 6 and 7 divide the CPU's dense time (energy = time x power) by each
platform's. PAPER_FIG6/7 are the paper's own EIE bars and geomeans, to compare against.
"""

from __future__ import annotations

import numpy as np

LAYER_ORDER = (
    "Alex-6", "Alex-7", "Alex-8", "VGG-6", "VGG-7", "VGG-8", "NT-We", "NT-Wd", "NT-LSTM",
)  # fmt: skip

# Table IV, batch 1, µs: (platform, dense or compressed) -> times in LAYER_ORDER.
TABLE_IV_US = {
    ("CPU", "dense"): (7516.2, 6187.1, 1134.9, 35022.8, 5372.8, 774.2, 605.0, 1361.4, 470.5),
    ("CPU", "compressed"): (3066.5, 1282.1, 890.5, 3774.3, 545.1, 777.3, 261.2, 437.4, 260.0),
    ("GPU", "dense"): (541.5, 243.0, 80.5, 1467.8, 243.0, 80.5, 65.0, 90.1, 51.9),
    ("GPU", "compressed"): (134.8, 65.8, 54.6, 167.0, 39.8, 48.0, 17.7, 41.1, 18.5),
    ("mGPU", "dense"): (12437.2, 5765.0, 2252.1, 35427.0, 5544.3, 2243.1, 1316, 2565.5, 956.9),
    ("mGPU", "compressed"): (2879.3, 1256.5, 837.0, 4377.2, 626.3, 745.1, 240.6, 570.6, 315),
}
# Table V, W.
POWER_W = {"CPU": 73.0, "GPU": 159.0, "mGPU": 5.1, "EIE": 0.59}
# The paper's EIE bars: Fig. 6 speedup and Fig. 7 energy efficiency over CPU dense.
PAPER_FIG6_EIE = (248, 507, 115, 1018, 618, 92, 63, 98, 60)
PAPER_FIG6_GEOMEAN = 189
PAPER_FIG7_EIE = (34522, 61533, 14826, 119797, 76784, 11828, 9485, 10904, 8053)
PAPER_FIG7_GEOMEAN = 24207


def geomean(values) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(values, np.float64)))))


def baseline_bars() -> tuple[dict, dict]:
    """({platform kind: speedups}, {platform kind: energy efficiencies}) over CPU dense."""
    cpu_us = np.asarray(TABLE_IV_US[("CPU", "dense")])
    cpu_uj = cpu_us * POWER_W["CPU"]
    speed, eff = {}, {}
    for (platform, kind), times in TABLE_IV_US.items():
        name = f"{platform} {kind}"
        speed[name] = cpu_us / np.asarray(times)
        eff[name] = cpu_uj / (np.asarray(times) * POWER_W[platform])
    return speed, eff
