"""The Table IV/V baselines reproduce the paper's own Fig. 6 bars (a check of the data)."""

import numpy as np

from eie_jax.eie import baselines

# ISCA 2016 Fig. 6, speedup over CPU dense, rounded as printed.
PAPER_FIG6 = {
    "CPU compressed": (2, 5, 1, 9, 10, 1, 2, 3, 2),
    "GPU dense": (14, 25, 14, 24, 22, 10, 9, 15, 9),
    "GPU compressed": (56, 94, 21, 210, 135, 16, 34, 33, 25),
    "mGPU compressed": (3, 5, 1, 8, 9, 1, 3, 2, 1),
}


def test_baseline_speedups_round_to_the_papers_fig6():
    speed, eff = baselines.baseline_bars()
    for name, printed in PAPER_FIG6.items():
        np.testing.assert_array_equal(np.round(speed[name]), printed, err_msg=name)
    np.testing.assert_array_equal(speed["CPU dense"], 1.0)
    np.testing.assert_array_equal(eff["CPU dense"], 1.0)
    assert round(baselines.geomean(baselines.PAPER_FIG6_EIE)) == baselines.PAPER_FIG6_GEOMEAN
    assert (
        abs(baselines.geomean(baselines.PAPER_FIG7_EIE) / baselines.PAPER_FIG7_GEOMEAN - 1) < 0.01
    )
