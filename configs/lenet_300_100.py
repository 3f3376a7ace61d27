"""Deep Compression of LeNet-300-100 on Fashion-MNIST, then its FC layers on the EIE model.

    python -m experiments.compress --config=configs/lenet_300_100.py --workdir=runs/lenet_300_100
    python -m experiments.compress --config=configs/lenet_300_100.py:smoke --workdir=/tmp/smoke

Any field can be overridden, e.g. --config.prune.layers.fc1.sparsity=0.95.
Recipe (Han et al. NIPS 2015 / ICLR 2016, adapted): dense training; iterative magnitude
pruning with retraining at a lower learning rate; per-layer k-means weight sharing with
linear initialisation and centroid fine-tuning; Huffman coding of codes and indices.
"""

import ml_collections

from eie_jax import hw_loss


def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.model = "lenet_300_100"
    config.dataset = "fashion_mnist"
    config.data_dir = ""  # empty: the dataset's default place
    config.validation_size = 5000
    config.seed = 0

    config.train = dict(
        epochs=20,
        batch_size=128,
        learning_rate=1e-3,
        weight_decay=1e-5,
        optimizer="adam",  # 'adam' (decoupled weight decay) | 'sgd' (momentum 0.9)
        lr_schedule="cosine",  # every stage decays its rate to 0: 'cosine' | 'constant'
    )
    # Deep Compression keeps 8 % / 9 % / 26 % of fc1 / fc2 / fc3 on MNIST (Table 1).
    # Fashion-MNIST is harder: Zhu & Gupta's gradual (cubic) schedule over 100 retraining
    # epochs at the original rate, with distillation (below), loses least (README, Tuning).
    config.prune = dict(
        method="magnitude",  # 'magnitude' masks or learned 'scores'
        schedule="gradual",  # 'one_shot' | 'iterative' | 'gradual'
        # Retraining lasts rounds * epochs_per_round epochs. iterative: round r prunes to
        # r/rounds of each target, then retrains; gradual and scores use one long schedule.
        rounds=1,
        epochs_per_round=100,
        learning_rate=1e-3,
        rule=dict(
            rule="sparsity",
            sparsity=0.92,
            layers=dict(fc1=dict(sparsity=0.925), fc2=dict(sparsity=0.91), fc3=dict(sparsity=0.74)),
        ),
        penalty=0.0,  # 'scores' only: weight of the density penalty
        # > 0: scale every layer's kept fraction by one factor so that the whole model keeps
        # this fraction of its weights (the per-layer ratios above are kept). 0: off.
        target_density=0.0,
    )
    config.share = dict(
        bits=4,  # every layer: EIE's 4-bit codebook (16 entries, entry 0 = zero)
        layer_bits=dict(),  # per-layer overrides, e.g. dict(fc3=5)
        init="linear",  # 'linear' | 'density' | 'random' | 'kmeans++'
        finetune_epochs=8,
        learning_rate=1e-4,  # centroids move little: a tenth of the retraining rate
    )
    # Knowledge distillation from the dense network while pruning and fine-tuning
    # (Hinton et al. 2015): loss = (1 - weight) * CE + weight * T^2 * KL. weight 0: off.
    config.distill = dict(weight=0.7, temperature=4.0)
    # EIE's expected cycles as a loss term (eie_jax/hw_loss.py); needs prune.method='scores'
    # (learned masks). weight 0: off, nothing traced.
    config.hw_loss = dict(hw_loss.DEFAULTS)
    # Deep Compression's bit accounting: relative indices of index_bits with filler zeros.
    config.storage = dict(index_bits=5, huffman=True)
    config.eie = dict(
        num_pes=64,
        fifo_depth=8,
        index_bits=4,
        clock_mhz=800.0,
        batch_size=2000,  # test inputs per simulate_batch call
        calibration_size=5000,  # training examples that set the fixed-point ranges
        headroom_bits=1,
    )
    if arg == "smoke":
        config.validation_size = 200
        config.train.update(epochs=1, batch_size=64)
        config.prune.update(epochs_per_round=2)
        config.share.update(finetune_epochs=1)
        config.eie.update(batch_size=256, calibration_size=200)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
