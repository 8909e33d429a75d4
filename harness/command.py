"""What every command of the harness does around its work: one line per failure, fixed exit codes.

2: a configuration that cannot run (`ConfigError`, before anything is written or loaded).
1: a job failed (a results folder that cannot be written: read-only or full, one line; images
or answers lost; a failed sweep job).
130 / 143: stopped by Ctrl-C / SIGTERM; finished runs are kept (each run folder appears whole
or not at all, see `harness.pipeline.store`), so the same command again resumes.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable

from harness.config import ConfigError
from harness.folders import FolderError

RESUME_HINT = "finished runs are kept; run the same command again to resume"


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def guarded(body: Callable[[], int | None], prog: str) -> int:
    """Run a command's body and turn its failures into one line on stderr and an exit code."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    # A log file on a full disk must not print a traceback per record; the failure that matters
    # (the results folder) is reported in one line below.
    raise_before, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        return int(body() or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        name = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
        print(f"{prog}: {name}; {RESUME_HINT}", file=sys.stderr)
        return 128 + int(signum)
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.raiseExceptions = raise_before


def wants_help(args: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)
