"""Deep Compression of LeNet-5 (Caffe variant) on Fashion-MNIST; its FC layers on EIE.

    python -m experiments.compress --config=configs/lenet5.py --workdir=runs/lenet5
    python -m experiments.compress --config=configs/lenet5.py:smoke --workdir=/tmp/smoke5

The recipe of configs/lenet_300_100.py with fewer epochs, so that the job fits in 15
minutes on 2 CPU cores (a LeNet-5 epoch costs about 17 s there: the convolutions). Deep
Compression keeps 66 / 12 / 8 / 19 % of conv1 / conv2 / fc1 / fc2 on MNIST with 8-bit conv
and 5-bit fc codebooks (Tables 1 and 3); we keep 7 % of fc1 and use EIE's 4-bit codebook
for the FC layers. The conv layers are compressed and reported; EIE runs the FC layers, as
in the EIE paper.
"""

from configs import lenet_300_100


def get_config(arg=None):
    config = lenet_300_100.get_config(arg)
    config.model = "lenet5"
    config.train.update(epochs=6)
    config.prune.update(epochs=11, sparsity=0.9)
    config.prune.layers = dict(
        conv1=dict(sparsity=0.34),
        conv2=dict(sparsity=0.88),
        fc1=dict(sparsity=0.93),
        fc2=dict(sparsity=0.81),
    )
    config.share.layer_bits = dict(conv1=8, conv2=8)  # fc layers: share.bits = 4 (EIE)
    config.share.finetune_epochs = 2
    if arg == "smoke":
        config.train.update(epochs=1)
        config.prune.update(epochs=1)
        config.share.update(finetune_epochs=1)
    return config
