"""User errors: one line that names the field, file or value and what to do; no traceback.

A mistake of the user's (a bad config field or value, a missing dataset, a workdir made with
another config, a corrupt checkpoint) raises `UserError`; the experiments' entry points run
through `run_main`, which prints such an error as one line on stderr and exits with status 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(ValueError):
    """A mistake the user can fix; its message is the whole story (one line)."""


def run_main(main: Callable) -> Callable:
    """Wraps an absl `main(argv)`: a UserError becomes one line on stderr and exit status 2."""

    def wrapped(argv):
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
