"""MNIST-format datasets: an IDX reader/writer, train/validation/test splits, batches.

IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code
byte, a byte holding the number of dimensions d, then d big-endian uint32 sizes and the
data in big-endian order. Files may be gzip-compressed; gzip is recognised by its magic
bytes 1f 8b, not by the file name.

Datasets: 'fashion_mnist' (Xiao et al. 2017; by default from
/usr/share/datasets/fashion-mnist, which Debian's dataset-fashion-mnist package installs)
and 'mnist' (IDX files in a data_dir you provide). Both have 60,000 training and 10,000
test 28x28 grey images in 10 classes.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Iterator

import numpy as np

from eie_jax.utils.cli import UserError

# IDX dtype code -> element type (big-endian on disk).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Dataset name -> default directory (None: data_dir is required).
DATASETS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": None,
}
_HOW_TO_GET = {
    "fashion_mnist": "install it with 'sudo apt-get install dataset-fashion-mnist' or pass "
    "data_dir with the Fashion-MNIST IDX files",
    "mnist": "put the MNIST IDX files in data_dir (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz)",
}
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NUM_CLASSES = 10


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into a native-byte-order array of its dtype and shape.

    Raises ValueError naming the file when the magic number, dtype code or size is wrong.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise UserError(f"{path}: corrupt gzip data ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(
            f"{path}: not an IDX file (magic {raw[:4].hex() or 'empty'}; expected "
            "00 00 <dtype> <ndim>)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise UserError(f"{path}: unknown IDX dtype code 0x{code:02X}; allowed: {allowed}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(
            f"{path}: IDX data is {len(raw) - header} bytes, shape {shape} of "
            f"{dtype.name} needs {expected}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Writes `array` as an IDX file, gzip-compressed when `path` ends in '.gz'.

    The dtype must be one of uint8, int8, int16, int32, float32, float64.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("=").name: c for c, dt in IDX_DTYPES.items()}
    if array.dtype.name not in codes:
        raise ValueError(f"array: dtype {array.dtype} cannot be stored in IDX; allowed: {codes}")
    if array.ndim > 255 or any(d >= 1 << 32 for d in array.shape):
        raise ValueError(f"array: shape {array.shape} does not fit IDX (ndim <= 255, dims < 2**32)")
    code = codes[array.dtype.name]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, IDX_DTYPES[code]).tobytes()
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)


@dataclasses.dataclass(frozen=True)
class Split:
    """images: (n, 28, 28, 1) float32 in [0, 1]; labels: (n,) int32."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int


def load_dataset(name: str, data_dir=None, *, validation_size: int, seed: int) -> Dataset:
    """Loads an MNIST-format dataset and carves a validation split out of train.

    The validation split is the first `validation_size` indices of
    np.random.default_rng(seed).permutation(n_train); both splits keep file order.

    Args:
      name: 'fashion_mnist' or 'mnist'.
      data_dir: directory with the four IDX files (each raw or .gz); overrides the
        dataset's default directory; required for 'mnist'.
      validation_size: examples moved from train to validation, in [0, n_train).
      seed: seed of the validation permutation.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset name={name!r}: allowed: {sorted(DATASETS)}")
    directory = data_dir or DATASETS[name]
    if directory is None:
        raise UserError(f"data_dir: required for dataset {name!r}; {_HOW_TO_GET[name]}")
    arrays = {key: read_idx(_find(directory, base, name)) for key, base in FILES.items()}
    train_x, train_y = _images(arrays["train_images"]), _labels(arrays["train_labels"])
    test_x, test_y = _images(arrays["test_images"]), _labels(arrays["test_labels"])
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y):
            raise UserError(f"{directory}: {split} has {len(x)} images but {len(y)} labels")
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise UserError(f"{directory}: {split} labels must be in [0, {NUM_CLASSES})")
    n = len(train_y)
    if isinstance(validation_size, bool) or not isinstance(validation_size, int | np.integer):
        raise ValueError(f"validation_size={validation_size!r}: must be an int")
    if not 0 <= validation_size < n:
        raise ValueError(f"validation_size={validation_size}: must be in [0, {n})")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:validation_size])
    train_idx = np.sort(perm[validation_size:])
    return Dataset(
        name=name,
        train=Split(train_x[train_idx], train_y[train_idx]),
        validation=Split(train_x[val_idx], train_y[val_idx]),
        test=Split(test_x, test_y),
        num_classes=NUM_CLASSES,
    )


def batches(
    images, labels, batch_size: int, *, seed: int, epoch: int, drop_remainder: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields shuffled (images, labels) batches for one epoch.

    The order is np.random.default_rng([seed, epoch]).permutation(n): the same for the
    same (seed, epoch), different across epochs. The last partial batch is kept by
    default, so each epoch sees every example once (ceil(n / batch_size) batches); with
    drop_remainder=True it is dropped (floor(n / batch_size) batches, all full).
    """
    n = len(labels)
    if len(images) != n:
        raise ValueError(f"images: {len(images)} examples but labels has {n}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size={batch_size!r}: must be an int >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    order = np.random.default_rng([seed, epoch]).permutation(n)
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield images[idx], labels[idx]


def _find(directory, base: str, name: str) -> str:
    tried = [os.path.join(directory, base), os.path.join(directory, base + ".gz")]
    for path in tried:
        if os.path.isfile(path):
            return path
    raise UserError(
        f"dataset {name!r}: missing {tried[0]} (also tried {tried[1]}); {_HOW_TO_GET[name]}"
    )


def _images(x: np.ndarray) -> np.ndarray:
    if x.ndim != 3:
        raise ValueError(f"images: expected an (n, rows, cols) IDX array, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        # Integer pixels are 8-bit grey levels 0..255 (MNIST, Fashion-MNIST).
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(
                f"images: integer pixels must be in [0, 255], got {x.min()}..{x.max()}"
            )
        return (x.astype(np.float32) / np.float32(255.0))[..., None]
    # Float pixels are taken as already scaled.
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images: float pixels must be in [0, 1], got {x.min()}..{x.max()}")
    return x.astype(np.float32)[..., None]


def _labels(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"labels: expected an (n,) IDX array, got shape {y.shape}")
    return y.astype(np.int32)
