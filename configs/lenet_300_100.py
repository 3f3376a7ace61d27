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

from eie_jax.studies.compress import config as run_config


def get_config(arg=None):
    # Every field, its default and what it allows: eie_jax/studies/compress/config.py (section()).
    config = run_config.section().defaults()
    config.train.update(epochs=20, batch_size=128, learning_rate=1e-3, weight_decay=1e-5)
    # Deep Compression keeps 8 % / 9 % / 26 % of fc1 / fc2 / fc3 on MNIST (Table 1).
    # Fashion-MNIST is harder: Zhu & Gupta's gradual (cubic) schedule over 100 retraining
    # epochs at the original rate, with distillation (below), loses least (README, Tuning).
    # A pruning method is score x structure x distribution x schedule (eie_jax/compression/prune);
    # every setting of every registered entry can be overridden here or on the command line.
    config.prune.update(
        score="magnitude",  # 'magnitude' | 'random' | 'learned' (trainable scores)
        structure="unstructured",  # 'unstructured' | 'std' | 'balanced' | 'n_m' | 'none'
        distribution="per_layer",  # 'per_layer' | 'global' (target_density overall)
        schedule="gradual",  # 'one_shot' | 'iterative' | 'gradual'
        epochs=100,  # retraining epochs of the whole stage
        learning_rate=1e-3,
        sparsity=0.92,  # every layer, unless layers.<name>.sparsity says otherwise
    )
    config.prune.layers = dict(
        fc1=dict(sparsity=0.925), fc2=dict(sparsity=0.91), fc3=dict(sparsity=0.74)
    )
    # EIE's 4-bit codebook (16 entries, entry 0 = zero), linear init, centroid fine-tuning
    # at a tenth of the retraining rate (centroids move little).
    config.share.update(method="kmeans", bits=4, init="linear", finetune_epochs=8)
    config.share.learning_rate = 1e-4
    # Knowledge distillation from the dense network while pruning and fine-tuning
    # (Hinton et al. 2015): loss = (1 - weight) * CE + weight * T^2 * KL. weight 0: off.
    config.distill.update(weight=0.7, temperature=4.0)
    # EIE's expected cycles as a loss term (config.hw_loss, eie_jax/training/hw_loss.py) is off
    # (weight 0); it needs prune.score='learned'.
    config.storage.update(index_bits=5, huffman=True)
    # The chip (ISCA 2016 Sec. V); EIE runs the layers config.eie.layers matches.
    config.eie.update(num_pes=64, fifo_depth=8, index_bits=4, clock_mhz=800.0)
    if arg == "smoke":
        config.validation_size = 200
        config.train.update(epochs=1, batch_size=64)
        config.prune.update(epochs=2)
        config.share.update(finetune_epochs=1)
        config.eie.update(batch_size=256, calibration_size=200)
    elif arg:
        raise ValueError(f"config arg={arg!r}: allowed: None or 'smoke'")
    return config
