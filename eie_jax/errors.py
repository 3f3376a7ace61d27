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


CONFIG_HELP = (
    "A config file (configs/*.py); append ':smoke' (e.g. configs/lenet_300_100.py:smoke) for "
    "a run of seconds. Override any field with --config.<field>=<value>, e.g. "
    "--config.prune.layers.fc1.sparsity=0.95 --config.eie.num_pes=16; the fields and what "
    "they mean are in the config file's comments."
)


def flags_parser(argv):
    """absl's flag parsing, with a bad `--config.<field>=<value>` as one line and exit 2.

    ml_collections reports an override of a field that does not exist as a bare
    AttributeError / KeyError deep in its parser; this names the argument instead.
    Pass as `app.run(run_main(main), flags_parser=flags_parser)`.
    """
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        key = str(e).strip("'\"")
        bad = [a for a in argv[1:] if a.startswith("--config.") and key.split(".")[-1] in a]
        what = bad[0].split("=")[0] if bad else f"a --config override ({e})"
        print(
            f"error: {what}: no such config field ({key!r}); see the config file", file=sys.stderr
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable) -> None:
    """`absl.app.run` for an experiment: user errors (in flags or in main) as one line, exit 2."""
    from absl import app

    app.run(run_main(main), flags_parser=flags_parser)
