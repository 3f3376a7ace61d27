"""The MNIST networks of Deep Compression (ICLR 2016, Table 1), built from masked layers."""

from __future__ import annotations

import jax
from flax import nnx

from eie_jax.compression.layers import MaskedConv, MaskedLinear
from eie_jax.models import register


def _max_pool_2x2(x):
    """2x2 max-pooling, stride 2, VALID (NHWC), as a max over a reshape.

    The same values as lax.reduce_window; its gradient is a cheap elementwise select, where
    reduce_window's (select_and_scatter) took half of a LeNet-5 training step on the CPU.
    """
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@register("lenet_300_100")
class LeNet300100(nnx.Module):
    """LeNet-300-100: 784-300-100-10 fully connected with ReLU; 266,610 parameters.

    Input (B, 28, 28, 1) (or anything with 784 values per example), output (B, 10) logits.
    """

    def __init__(self, *, rngs: nnx.Rngs):
        self.fc1 = MaskedLinear(784, 300, rngs=rngs)
        self.fc2 = MaskedLinear(300, 100, rngs=rngs)
        self.fc3 = MaskedLinear(100, 10, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)


@register("lenet5")
class LeNet5(nnx.Module):
    """LeNet-5 as in Caffe's examples/mnist (the one Deep Compression prunes); 431,080 params.

    conv 20 5x5 (VALID) -> max-pool 2x2 -> conv 50 5x5 (VALID) -> max-pool 2x2 -> fc 500
    -> ReLU -> fc 10. Caffe has no nonlinearity after the convolutions; we follow it.
    Input (B, 28, 28, 1) NHWC, output (B, 10) logits. The flatten is NHWC order.
    """

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = MaskedConv(1, 20, 5, rngs=rngs)
        self.conv2 = MaskedConv(20, 50, 5, rngs=rngs)
        self.fc1 = MaskedLinear(4 * 4 * 50, 500, rngs=rngs)
        self.fc2 = MaskedLinear(500, 10, rngs=rngs)

    def __call__(self, x):
        x = _max_pool_2x2(self.conv1(x))
        x = _max_pool_2x2(self.conv2(x))
        x = jax.nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc2(x)
