"""Reading the files a user hands in (checkpoint folders, MME copies) so that a damaged one
fails in one line naming it, before any model loads (docs/bad_input.md).

Every reader here raises `BadFile`, a ValueError: the job checks (`harness.pipeline.job`) turn it into a
configuration error (exit 2). Nothing here follows a name out of the folder that holds it: an
index file may only name files inside its checkpoint folder.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any


class BadFile(ValueError):
    """A file that cannot be used as it is; the message starts with its path."""


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path` (`what` says which file it is, e.g. "config.json")."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise BadFile(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFile(f"{path}: {what} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(value, dict):
        raise BadFile(f"{path}: {what} must hold a JSON object; it holds a {type(value).__name__}")
    return value


def name_inside(folder: Path, name: object, what: str) -> str:
    """`name` as a file name an index may give: relative, without `..`, so that it stays in
    `folder` (checked on the name, not by resolving links: the hub cache's files are links)."""
    if not isinstance(name, str) or not name:
        raise BadFile(f"{folder}: {what} names a file {name!r}; expected a file name")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise BadFile(f"{folder}: {what} names {name!r}, outside the checkpoint folder (refused)")
    return name


def safetensors_keys(path: Path) -> list[str]:
    """The tensor names in a safetensors file's header. safetensors checks that the header
    covers the file exactly, so a truncated download fails here, not halfway through loading."""
    from safetensors import safe_open

    if not path.is_file():
        raise BadFile(f"{path}: no such safetensors file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except Exception as exc:
        raise BadFile(f"{path}: not a readable safetensors file ({exc}); a truncated download? fetch it again") \
            from exc


def open_parquet(path: Path) -> Any:
    """`pyarrow.parquet.ParquetFile(path)`, its footer read; a zero-byte or garbage file is named."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise BadFile(f"{path}: not a readable parquet file ({exc})") from exc
