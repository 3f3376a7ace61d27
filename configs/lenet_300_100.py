"""Deep Compression of LeNet-300-100 on Fashion-MNIST, then its FC layers on the EIE model.

    python -m experiments.compress --config=configs/lenet_300_100.py --workdir=runs/lenet_300_100
    python -m experiments.compress --config=configs/lenet_300_100.py:smoke --workdir=/tmp/smoke

Any field can be overridden, e.g. --config.prune.layers.fc1.sparsity=0.95 or
--config.prune.structure=balanced --config.prune.num_pes=16.
Recipe (Han et al. NIPS 2015 / ICLR 2016, adapted to Fashion-MNIST): dense training;
gradual (cubic) magnitude pruning over 100 retraining epochs at the original learning rate
with distillation from the dense network; per-layer 4-bit k-means weight sharing with
linear initialisation and centroid fine-tuning; Huffman coding of codes and indices.
"""

import ml_collections

from eie_jax import hw_loss, prune


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
        # A stage checkpoints inside after an epoch when this many minutes have passed since
        # its last one (0: every epoch); an interrupted run resumes there, same results.
        checkpoint_minutes=5.0,
    )
    # Deep Compression keeps 8 % / 9 % / 26 % of fc1 / fc2 / fc3 on MNIST (Table 1).
    # Fashion-MNIST is harder: Zhu & Gupta's gradual (cubic) schedule over 100 retraining
    # epochs at the original rate, with distillation (below), loses least (README, Tuning).
    # A pruning method is score x structure x distribution x schedule (eie_jax/prune);
    # prune.defaults() holds every setting of every registered entry, so each can be
    # overridden here or on the command line.
    config.prune = prune.defaults(
        score="magnitude",  # 'magnitude' | 'random' | 'learned' (trainable scores)
        structure="unstructured",  # 'unstructured' | 'std' | 'balanced' | 'n_m' | 'none'
        distribution="per_layer",  # 'per_layer' | 'global' (target_density overall)
        schedule="gradual",  # 'one_shot' | 'iterative' | 'gradual'
        epochs=100,  # retraining epochs of the whole stage
        learning_rate=1e-3,
        sparsity=0.92,  # every layer, unless layers.<name>.sparsity says otherwise
        layers=dict(fc1=dict(sparsity=0.925), fc2=dict(sparsity=0.91), fc3=dict(sparsity=0.74)),
    )
    config.share = dict(
        method="kmeans",  # 'kmeans' (Deep Compression) | 'linear' (int grid, frozen)
        bits=4,  # every layer: EIE's 4-bit codebook (16 entries, entry 0 = zero)
        layer_bits=dict(),  # per-layer overrides, e.g. dict(fc3=5)
        init="linear",  # 'linear' | 'density' | 'random' | 'kmeans++'
        finetune_epochs=8,
        learning_rate=1e-4,  # centroids move little: a tenth of the retraining rate
    )
    # Knowledge distillation from the dense network while pruning and fine-tuning
    # (Hinton et al. 2015): loss = (1 - weight) * CE + weight * T^2 * KL. weight 0: off.
    config.distill = dict(weight=0.7, temperature=4.0)
    # EIE's expected cycles as a loss term (eie_jax/hw_loss.py); needs prune.score='learned'
    # (learned masks). weight 0: off, nothing traced.
    config.hw_loss = dict(hw_loss.DEFAULTS)
    # Deep Compression's bit accounting: relative indices of index_bits with filler zeros.
    config.storage = dict(index_bits=5, huffman=True)
    config.eie = dict(
        num_pes=64,
        fifo_depth=8,
        index_bits=4,
        clock_mhz=800.0,
        layers=r"fc\d+",  # regex (re.fullmatch) of the layers EIE runs; the rest: host float
        batch_size=2000,  # test inputs per simulate_batch call
        calibration_size=5000,  # training examples that set the fixed-point ranges
        headroom_bits=1,
    )
    if arg == "smoke":
        config.validation_size = 200
        config.train.update(epochs=1, batch_size=64)
        config.prune.update(epochs=2)
        config.share.update(finetune_epochs=1)
        config.eie.update(batch_size=256, calibration_size=200)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
