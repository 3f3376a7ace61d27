"""Small learnable MNIST-format datasets written as IDX files, for end-to-end tests."""

import os

import numpy as np

from eie_jax.data import idx as data


def write_idx_dataset(root, *, n_train=600, n_test=60, num_classes=10, seed=0, gz=True) -> str:
    """Writes train/t10k images and labels under root: noisy copies of one prototype per class.

    Returns root, ready to be a config's data_dir for the dataset 'mnist'.
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, (num_classes, 28, 28))

    def split(n):
        labels = rng.integers(0, num_classes, n)
        noise = rng.normal(0, 60, (n, 28, 28))
        images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels.astype(np.uint8)

    os.makedirs(root, exist_ok=True)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = split(n)
        data.write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte{sfx}"), images)
        data.write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte{sfx}"), labels)
    return str(root)
