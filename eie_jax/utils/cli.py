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


def _write_failure(e: OSError) -> str | None:
    """A write the disk refused (full, over quota, read-only, not permitted) as one line
    naming the file and what to do; None for any other OSError (a bug: its traceback)."""
    import errno

    fix = {
        errno.ENOSPC: "free space",
        errno.EDQUOT: "free space",
        errno.EROFS: "make it writable",
        errno.EACCES: "make it writable",
    }.get(e.errno)
    if fix is None:
        return None
    where = e.filename2 or e.filename or "to disk"  # a rename names what it writes second
    return f"cannot write {where} ({e.strerror}); {fix} and rerun the same command to resume"


def run_main(main: Callable) -> Callable:
    """Wraps an absl `main(argv)`: a UserError becomes one line on stderr and exit status 2,
    and so does a write the disk refused (full, read-only: `_write_failure`); Ctrl-C one
    line saying how to resume, exit status 130."""

    def wrapped(argv):
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            message = _write_failure(e)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)

    return wrapped


CONFIG_HELP = (
    "A config file (configs/*.py); append ':smoke' (e.g. configs/lenet_300_100.py:smoke) for "
    "a run of seconds. Override any field with --config.<field>=<value>, e.g. "
    "--config.prune.layers.fc1.sparsity=0.95 --config.eie.num_pes=16; every field, its "
    "default and what it allows is declared in the study's schema (README, Configs, "
    "overrides and mistakes); --validate_only checks a config and exits."
)


def _config_arg(argv) -> str:
    return next((a for a in argv[1:] if a.startswith("--config=")), "--config")


def _override_error(argv, e) -> str:
    """A bad `--config.<field>=<value>`, named, with ml_collections' suggestion if any."""
    while e.args and isinstance(e.args[0], BaseException):  # AttributeError(KeyError(...))
        e = e.args[0]
    text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    key, _, hint = text.strip().partition("\n")
    key = key.strip("'\"")
    bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.") and key in a]
    hint = hint.strip()
    hint = f"; {hint[0].lower()}{hint[1:]}" if hint else ""
    return f"{bad[0] if bad else 'a --config override'}: no such config field {key!r}{hint}"


def _last_line(text: str) -> str:
    """The exception line at the end of a traceback absl folded into a message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def flags_parser(argv):
    """absl's flag parsing, with every mistake in the flags as one line and exit status 2.

    A missing or unreadable config file, a config argument the file refuses
    (`configs/x.py:bogus`), an override of a field that does not exist (ml_collections
    reports it as a bare AttributeError / KeyError deep in its parser) or a missing flag.
    Pass as `app.run(run_main(main), flags_parser=flags_parser)`.
    """
    from absl import flags

    try:
        rest = flags.FLAGS(argv)
        if "config" in flags.FLAGS:  # a file config_flags failed to load raises on access
            getattr(flags.FLAGS["config"].value, "to_dict", None)
        return rest
    except flags.Error as e:
        message = str(e)
        if "Traceback" in message:  # the config file raised: keep its own message
            message = f"{_config_arg(argv)}: {_last_line(message)}"
    except SyntaxError as e:  # the config file is not Python
        message = f"{_config_arg(argv)}: line {e.lineno}: {e.msg}"
    except OSError as e:  # config_flags: the file could not be loaded
        message = f"{_config_arg(argv)}: cannot load the config file ({_last_line(str(e))})"
    except (AttributeError, KeyError) as e:
        message = _override_error(argv, e)
    except (TypeError, ValueError) as e:
        message = f"{_config_arg(argv)}: {e}"
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable, validate: Callable[[], None] | None = None) -> None:
    """`absl.app.run` for an experiment: user errors (in flags or in main) as one line, exit 2.

    validate: the entry point's config check (its schema and the checks that need no
    data), run before main; with it comes a `--validate_only` flag that stops after it.
    """
    from absl import app, flags

    if validate is not None:
        flags.DEFINE_bool("validate_only", False, "Check the config and the flags, then exit.")

    def checked(argv):
        if validate is not None:
            validate()
            if flags.FLAGS.validate_only:
                print("config ok")
                return None
        return main(argv)

    app.run(run_main(checked), flags_parser=flags_parser)
