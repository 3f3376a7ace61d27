"""The text loader on tiny folders the tests write: Shakespeare-style `<work>_gut.txt` and a
user's own `<work>.txt` files, split by file, vocabulary from the training works, contiguous
windows, and one-line errors (missing folder, name collision, non-UTF-8, unknown work)."""

import os

import numpy as np
import pytest

from eie_jax.data import text
from eie_jax.utils.cli import UserError
from tests import synthetic_text


@pytest.fixture
def corpus_dir(tmp_path):
    root = synthetic_text.write_corpus(str(tmp_path / "texts"))
    with open(os.path.join(root, "zeta_gut.txt"), "w") as f:
        f.write("Qz~ only here\n")  # '~' and 'Q' appear in no training work
    with open(os.path.join(root, "notes.md"), "w") as f:
        f.write("not a work: not .txt")
    with open(os.path.join(root, "._alpha.txt"), "wb") as f:
        f.write(b"\x00\x05\x16\x07\xff")  # a macOS resource fork: dotfiles are skipped
    os.makedirs(os.path.join(root, "drafts.txt"))  # a folder, not a work
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


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_missing_or_empty_folder_says_make_target_or_own_txt_files(tmp_path, make):
    root = tmp_path / "nothing"
    if make:
        root.mkdir()
        (root / "notes.md").write_text("no .txt here")
    with pytest.raises(UserError, match="make text-data") as e:
        text.load(str(root), ["a"], ["b"])
    message = str(e.value)
    assert ".txt files there" in message and "\n" not in message
    assert ("holds no .txt file" if make else "does not exist") in message


def test_own_txt_files_split_by_file_like_shakespeare(tmp_path):
    """A folder of <work>.txt files loads exactly as the same texts named <work>_gut.txt."""
    mine = synthetic_text.write_corpus(str(tmp_path / "mine"), suffix=".txt")
    gut = synthetic_text.write_corpus(str(tmp_path / "gut"))
    with open(os.path.join(mine, "a-z.txt"), "w", encoding="utf-8") as f:
        f.write("Ünïcödé — “quoted” ✓\n")  # UTF-8 beyond ASCII; '-' sorts before 'l'
    os.rename(os.path.join(gut, "alpha_gut.txt"), os.path.join(gut, "alpha.txt"))  # mixed
    with open(os.path.join(gut, "a-z_gut.txt"), "w", encoding="utf-8") as f:
        f.write("Ünïcödé — “quoted” ✓\n")
    assert text.available_works(mine) == ["a-z", "alpha", "beta", "delta", "epsilon", "gamma"]
    data = text.load(mine, ("beta",), ("gamma",))
    assert data.works == dict(
        train=("a-z", "alpha", "delta", "epsilon"), validation=("beta",), test=("gamma",)
    )
    assert data.decode(data.train[:22]) == "Ünïcödé — “quoted” ✓\n\n"
    same = text.load(gut, ("beta",), ("gamma",))
    assert same.vocab == data.vocab and same.works == data.works
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(same, split), getattr(data, split))


def test_two_files_of_one_name_are_refused(tmp_path):
    root = synthetic_text.write_corpus(str(tmp_path / "texts"), suffix=".txt")
    with open(os.path.join(root, "beta_gut.txt"), "w") as f:
        f.write("a second beta")
    with pytest.raises(UserError, match="beta.txt and beta_gut.txt") as e:
        text.load(root, ["alpha"], ["gamma"])
    assert "'beta'" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("work", ["beta", "delta"], ids=["validation", "training"])
def test_non_utf8_file_is_named_with_its_byte(tmp_path, work):
    root = synthetic_text.write_corpus(str(tmp_path / "texts"), suffix=".txt")
    with open(os.path.join(root, f"{work}.txt"), "wb") as f:
        f.write("café".encode("latin-1"))
    with pytest.raises(UserError, match=r"delta\.txt|beta\.txt") as e:
        text.load(root, ["beta"], ["gamma"])
    message = str(e.value)
    assert f"{work}.txt: not UTF-8" in message and "byte 3" in message and "xe9" in message
    assert "\n" not in message


def test_unknown_work_names_the_available_ones(tmp_path):
    root = synthetic_text.write_corpus(str(tmp_path / "texts"), ("a", "b", "c"), suffix=".txt")
    with pytest.raises(UserError) as e:
        text.load(root, ["a"], ["b.txt"])
    message = str(e.value)
    assert message.startswith("config.data.test_works: 'b.txt' is not in")
    assert message.endswith("available: a, b, c") and "\n" not in message
    hint = r"""several works: --config.data.validation_works='\("a","b"\)'$"""
    with pytest.raises(UserError, match=hint):
        text.load(root, ["a,c"], ["b"])  # what --config.data.validation_works=a,c gives


@pytest.mark.parametrize(
    "validation,test,match",
    [
        (["hamlet"], ["beta"], "hamlet"),
        (["beta"], ["beta"], "both"),
        (["beta", "beta"], ["gamma"], r"listed twice: \['beta'\]"),
        ([], ["beta"], "at least"),
    ],
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
