r"""Training sweep: LeNet-300-100 accuracy and compression ratio over target density x weight bits.

python -m experiments.sweep --config=configs/sweeps/lenet_density_bits.py --workdir=runs/lenet_db

Deep Compression (Han et al., ICLR 2016) keeps 8 % of LeNet-300-100's weights at 6 bits
for 40x; this sweep maps the neighbourhood: each point is one full compression run
(`eie_jax.studies.compress.pipeline.sweep_point`, from configs/lenet_300_100.py) that writes its
own line. `:smoke` runs two tiny points.
"""

import ml_collections

# The fields of configs/lenet_300_100.py that set the overall kept fraction (per-layer ratios
# as in Deep Compression) and every layer's codebook size.
DENSITY_FIELD = "prune.target_density"
BITS_FIELD = "share.bits"
DENSITIES = [0.04, 0.06, 0.08, 0.12, 0.2]
WEIGHT_BITS = [3, 4, 5, 6]


def get_config(arg=None):
    # Imported here so that listing or linting the sweep configs needs no training code.
    from configs import lenet_300_100

    config = lenet_300_100.get_config(*(("smoke",) if arg == "smoke" else ()))
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError("configs/lenet_300_100.py: get_config must return a ConfigDict")
    config.unlock()
    config.prune.distribution = "global"  # target_density sets the overall kept fraction
    config.runner = "train"
    config.train_fn = "eie_jax.studies.compress.pipeline.sweep_point"
    common = dict(x=DENSITY_FIELD, series=BITS_FIELD, xlabel="weights kept (target density)")
    config.plots = [
        dict(y="compressed_accuracy", name="lenet_accuracy_vs_density.png", **common),
        dict(y="compression_ratio", logy=True, name="lenet_ratio_vs_density.png", **common),
    ]
    return config


def get_sweep(arg=None):
    from eie_jax.sweep import product, sweep

    densities, bits = DENSITIES, WEIGHT_BITS
    if arg == "smoke":
        densities, bits = [0.08, 0.2], [4]
    return product(sweep(DENSITY_FIELD, densities), sweep(BITS_FIELD, bits))
