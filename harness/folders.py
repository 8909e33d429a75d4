"""The folders the harness writes into: names that become paths, writability, leftovers.

Every name a user gives that becomes part of a path (a study, a table stem) must stay one
folder level below its root: letters, digits, `_`, `.` and `-`, never `.` or `..`. Results
folders are checked writable before any model loads, so a read-only or full disk fails in a
second, not after the computation. Temporary folders (`.tmp-*`, see `harness.pipeline.store`) carry the
host and pid of their writer; those of dead processes are removed before a job starts.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# A name becomes file names with suffixes (`.<study>_compare.parquet.<pid>.part`): well under
# the 255 bytes file systems allow.
MAX_NAME_LENGTH = 120
OWNER = "OWNER"  # `<host> <pid>` of the process filling a temporary folder
# A temporary folder without an owner file (an older harness) is left alone this long.
ORPHAN_AGE_S = 24 * 3600


class FolderError(OSError):
    """A results folder that cannot be written; the message names the folder and the cause."""


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.fullmatch(name)) and name not in (".", "..") and len(name) <= MAX_NAME_LENGTH


def check_name(value: object, what: str = "study") -> str:
    """`value` as a name that is safe as one path component, else ValueError naming the rule."""
    name = str(value)
    if not is_safe_name(name):
        raise ValueError(
            f"{what}={name[:60]!r}{'...' if len(name) > 60 else ''} is not a safe name: use at most "
            f"{MAX_NAME_LENGTH} letters, digits, '_', '.', '-' (not '.' or '..'), since it becomes a folder name"
        )
    return name


def check_writable(folder: str | Path) -> Path:
    """Prove a file can be written and removed in `folder`, or (not there yet) in its nearest
    existing parent, where it will be created; creates nothing itself."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FolderError(f"results folder {folder} is not writable: {existing} is not a folder")
    probe = existing / f".write-test-{socket.gethostname()}-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
        raise FolderError(f"results folder {folder} is not writable: {exc.strerror or exc}") from exc
    return folder


def owner_text() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(tmp: Path, now: float | None = None) -> bool:
    """Whether a temporary folder's writer is gone: a process of this host that no longer
    runs, or (no owner file) a folder untouched for `ORPHAN_AGE_S`."""
    try:
        host, pid = (tmp / OWNER).read_text().split()
    except (OSError, ValueError):
        try:
            return (now or time.time()) - tmp.stat().st_mtime > ORPHAN_AGE_S
        except OSError:
            return False
    return host == socket.gethostname() and not _alive(int(pid))


def clean_leftovers(folder: str | Path, prefix: str) -> list[Path]:
    """Remove the `prefix*` temporary folders in `folder` whose writer is gone and stray
    `*.part` files next to them; returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        if path.name.startswith(prefix) and path.is_dir() and is_abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif path.name.endswith(".part") and path.is_file() and time.time() - path.stat().st_mtime > ORPHAN_AGE_S:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
