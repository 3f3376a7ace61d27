"""IDX reader/writer, dataset loading and splits, batching; all on files written here."""

import gzip
import os

import numpy as np
import pytest

from eie_jax.data import idx as data
from eie_jax.utils.cli import UserError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        a = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    else:
        a = rng.normal(size=(3, 4, 5)).astype(dtype)
    path = tmp_path / f"a{suffix}"
    data.write_idx(path, a)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = data.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_big_endian_by_hand(tmp_path):
    path = tmp_path / "labels"
    data.write_idx(path, np.array([1, 258], np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])
    # A hand-written file with an int32 payload.
    hand = tmp_path / "hand"
    hand.write_bytes(
        bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + b"\x00\x00\x01\x00\xff\xff\xff\xff"
    )
    np.testing.assert_array_equal(data.read_idx(hand), [[256, -1]])


def test_gzip_detected_by_magic_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    plain = tmp_path / "x.gz"  # misleading name, raw content
    data.write_idx(tmp_path / "tmp", a)
    os.rename(tmp_path / "tmp", plain)
    np.testing.assert_array_equal(data.read_idx(plain), a)
    zipped = tmp_path / "y-ubyte"  # no .gz, gzip content
    zipped.write_bytes(gzip.compress((plain).read_bytes()))
    np.testing.assert_array_equal(data.read_idx(zipped), a)


def test_bad_magic_and_size_name_the_file(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="bad-magic.*not an IDX file"):
        data.read_idx(bad)
    code = tmp_path / "bad-code"
    code.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="bad-code.*dtype code 0x07"):
        data.read_idx(code)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03\x05")
    with pytest.raises(ValueError, match="short.*1 bytes.*needs 3"):
        data.read_idx(short)


def _write_dataset(root, n_train=50, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    os.makedirs(root, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        data.write_idx(os.path.join(root, name + sfx), a)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_load_dataset_splits(tmp_path, gz):
    arrays = _write_dataset(tmp_path, gz=gz)
    ds = data.load_dataset("mnist", tmp_path, validation_size=10, seed=3)
    assert ds.num_classes == 10 and ds.name == "mnist"
    assert ds.train.images.shape == (40, 28, 28, 1) and ds.train.images.dtype == np.float32
    assert ds.validation.images.shape == (10, 28, 28, 1)
    assert ds.test.images.shape == (20, 28, 28, 1)
    assert ds.train.labels.dtype == np.int32
    assert 0.0 <= ds.train.images.min() and ds.train.images.max() <= 1.0
    # Validation = the first 10 of the seeded permutation; train = the rest; file order.
    perm = np.random.default_rng(3).permutation(50)
    val_idx, train_idx = np.sort(perm[:10]), np.sort(perm[10:])
    raw_x, raw_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    np.testing.assert_array_equal(ds.validation.labels, raw_y[val_idx])
    np.testing.assert_array_equal(ds.train.labels, raw_y[train_idx])
    np.testing.assert_allclose(ds.train.images[..., 0], raw_x[train_idx] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.test.labels, arrays["t10k-labels-idx1-ubyte"])
    # Same seed, same split; another seed, another split.
    again = data.load_dataset("mnist", tmp_path, validation_size=10, seed=3)
    np.testing.assert_array_equal(again.validation.labels, ds.validation.labels)
    other = data.load_dataset("mnist", tmp_path, validation_size=10, seed=4)
    assert not np.array_equal(other.validation.images, ds.validation.images)


def test_fashion_mnist_data_dir_overrides_default(tmp_path):
    _write_dataset(tmp_path, n_train=12, n_test=3)
    ds = data.load_dataset("fashion_mnist", str(tmp_path), validation_size=2, seed=0)
    assert len(ds.train) == 10 and len(ds.test) == 3


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(UserError) as err:
        data.load_dataset("fashion_mnist", tmp_path, validation_size=1, seed=0)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), "train-images-idx3-ubyte") in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    with pytest.raises(UserError, match="put the MNIST IDX files in data_dir"):
        data.load_dataset("mnist", tmp_path, validation_size=1, seed=0)
    with pytest.raises(ValueError, match="data_dir"):
        data.load_dataset("mnist", None, validation_size=1, seed=0)


def test_unknown_name_and_bad_validation_size(tmp_path):
    with pytest.raises(ValueError, match=r"'cifar'.*\['fashion_mnist', 'mnist'\]"):
        data.load_dataset("cifar", tmp_path, validation_size=1, seed=0)
    _write_dataset(tmp_path, n_train=5, n_test=2)
    with pytest.raises(ValueError, match=r"validation_size=5: must be in \[0, 5\)"):
        data.load_dataset("mnist", tmp_path, validation_size=5, seed=0)


@pytest.mark.parametrize("drop", [False, True])
def test_batches_deterministic_and_complete(drop):
    x = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    run = lambda seed, epoch: list(
        data.batches(x, y, 5, seed=seed, epoch=epoch, drop_remainder=drop)
    )
    b0 = run(0, 0)
    assert [len(yb) for _, yb in b0] == ([5] * 4 if drop else [5] * 4 + [3])
    labels = np.concatenate([yb for _, yb in b0])
    if drop:
        assert len(set(labels.tolist())) == 20
    else:
        np.testing.assert_array_equal(np.sort(labels), y)  # every example once
    for xb, yb in b0:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # images stay with their labels
    again = run(0, 0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(b0, again, strict=True))
    assert not np.array_equal(np.concatenate([yb for _, yb in run(0, 1)]), labels)
    assert not np.array_equal(np.concatenate([yb for _, yb in run(1, 0)]), labels)
    assert not np.array_equal(labels, np.arange(len(labels)))  # actually shuffled


def test_installed_fashion_mnist_if_present():
    root = data.DATASETS["fashion_mnist"]
    if not os.path.isdir(root):
        pytest.skip(f"{root} not installed (sudo apt-get install dataset-fashion-mnist)")
    labels = data.read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    assert labels.shape == (10_000,) and labels.max() == 9
