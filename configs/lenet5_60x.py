"""LeNet-5 on Fashion-MNIST at 60x (P+Q+H) within 0.5 points of dense.

    python -m experiments.compress --config=configs/lenet5_60x.py --workdir=runs/l5_60x
    python -m experiments.compress --config=configs/lenet5_60x.py:smoke --workdir=/tmp/s5

configs/lenet5.py's recipe (the same dense network; gradual magnitude pruning with
distillation; k-means sharing with fine-tuning; Huffman coding of both streams) moved
along the levers of configs/lenet_300_100_64x.py (README, "Past 40x"):
  - fc1 (93 % of the weights) keeps 6 % (7 % before) with 2-bit codes (3 shared values);
  - a longer pruning stage for the sparser masks: 30 epochs (11 before);
  - conv1 and conv2 share 4-bit codebooks (8 before): conv1's 255-entry 32-bit codebook
    alone was 1 KB of the 42 KB; fc2 keeps 4 bits;
  - 6-bit relative indices (5 before); centroids fine-tuned 4 epochs at 3e-4 (2 at 1e-4).
"""

from configs import lenet5


def get_config(arg=None):
    config = lenet5.get_config(arg)
    config.prune.layers.fc1.sparsity = 0.94
    config.share.layer_bits = dict(conv1=4, conv2=4, fc1=2, fc2=4)
    config.share.learning_rate = 3e-4
    config.storage.index_bits = 6
    if arg != "smoke":  # the smoke variant keeps its one-epoch stages
        config.prune.epochs = 30
        config.share.finetune_epochs = 4
    return config
