"""The Shakespeare loader on a tiny text the test writes: split by work, vocabulary from the
training works, contiguous windows, and a one-line error naming the make target."""

import os

import numpy as np
import pytest

from eie_jax import text
from eie_jax.errors import UserError
from tests import synthetic_text


@pytest.fixture
def corpus_dir(tmp_path):
    root = synthetic_text.write_corpus(str(tmp_path / "texts"))
    with open(os.path.join(root, "zeta_gut.txt"), "w") as f:
        f.write("Qz~ only here\n")  # '~' and 'Q' appear in no training work
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not a work")
    return root


def test_split_by_work_and_vocabulary_from_training(corpus_dir):
    data = text.load(corpus_dir, ["beta"], ["zeta", "gamma"])
    assert data.works["train"] == ("alpha", "delta", "epsilon")
    assert data.works["validation"] == ("beta",) and data.works["test"] == ("zeta", "gamma")
    assert not set(data.works["train"]) & set(data.works["validation"] + data.works["test"])
    with open(os.path.join(corpus_dir, "alpha_gut.txt")) as f:
        alpha = f.read()
    assert data.decode(data.train[: len(alpha)]) == alpha  # round trip, first work
    assert "~" not in data.vocab and data.vocab[0] == "\0"
    assert list(data.vocab[1:]) == sorted(set(data.vocab[1:]))
    zeta = data.test[: len("Qz~ only here\n")]
    assert zeta[2] == text.UNKNOWN and zeta[0] == text.UNKNOWN  # unseen characters
    assert data.train.min() >= 1 and data.train.max() < data.vocab_size


def test_missing_corpus_names_the_make_target(tmp_path):
    with pytest.raises(UserError, match="make text-data") as e:
        text.load(str(tmp_path / "nothing"), ["a"], ["b"])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "validation,test,match",
    [(["hamlet"], ["beta"], "hamlet"), (["beta"], ["beta"], "both"), ([], ["beta"], "at least")],
)
def test_bad_split_is_refused(corpus_dir, validation, test, match):
    with pytest.raises(UserError, match=match):
        text.load(corpus_dir, validation, test)


def test_train_batch_windows_are_contiguous_and_shifted():
    ids = np.arange(1000, dtype=np.int32)
    x, y = text.train_batch(ids, 16, 10, np.random.default_rng(0))
    assert x.shape == y.shape == (16, 10)
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)
    assert x.min() >= 0 and y.max() <= 999


def test_eval_windows_do_not_overlap_and_spread_evenly():
    ids = np.arange(101, dtype=np.int32)
    x, y = text.eval_windows(ids, 10)
    assert x.shape == (10, 10)
    np.testing.assert_array_equal(x.reshape(-1), np.arange(100))
    np.testing.assert_array_equal(y, x + 1)
    x3, _ = text.eval_windows(ids, 10, max_windows=3)
    np.testing.assert_array_equal(x3[:, 0], [0, 40, 90])  # windows 0, round(4.5), 9
    with pytest.raises(UserError, match="shorter"):
        text.eval_windows(ids[:5], 10)
