"""Writing and finding run records.

A job builds its folder under a hidden temporary name (`.tmp-<run id>`), writes `COMPLETE`
last and renames the folder into place, so an interrupted job leaves nothing that looks
finished or partial (a stale `.tmp-*` folder is ignored by every reader and by resume).

A job that fails writes a `FAILED` folder instead: `records.parquet` with one `kind=run`
row (`status=error:<kind>`, the message), the config and `error.txt` (the traceback). A
temporary folder holds an `OWNER` file (host and pid) so that the leftovers of a killed process
can be told from a running writer's (`harness.folders`). Resume looks only for `COMPLETE`, so
it retries failed configurations; tables keep them, marked.

One configuration is computed by one process at a time: `claim_config` takes its lock
(`.<hash>.lock` in the study folder) before the resume lookup, so a second process started
together waits and then finds the first one's result; locks of dead processes are broken.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.config import ConfigError
from harness.folders import OWNER, FolderError, is_safe_name, owner_text
from harness.types import Record

COMPLETE = "COMPLETE"
FAILED = "FAILED"
RECORDS = "records.parquet"
EMBEDDINGS = "embeddings.npz"
CONFIG = "config.yaml"
ERROR = "error.txt"
TMP_PREFIX = ".tmp-"


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


def _scalar(value: Any) -> Any:
    """Parquet wants one type per column: lists and dicts become JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def records_frame(records: Iterable[Record]) -> pd.DataFrame:
    return pd.DataFrame([{k: _scalar(v) for k, v in r.to_row().items()} for r in records])


def hash_of(run_dir: str | Path) -> str:
    """The config hash in a run folder's name `<timestamp>-<hash>`."""
    return Path(run_dir).name.rsplit("-", 1)[-1]


class RunStore:
    """One job's folder: `config.yaml`, `records.parquet`, optional `embeddings.npz`, then
    `COMPLETE` (or `FAILED` and `error.txt`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def _publish(self, fill: Any, marker: str) -> Path:
        """Fill a temporary sibling folder, write `marker` last, rename it into place."""
        tmp = self.run_dir.with_name(TMP_PREFIX + self.run_dir.name)
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            tmp.mkdir(parents=True)
            (tmp / OWNER).write_text(owner_text())  # lets a later job tell a dead writer's leftovers
            fill(tmp)
            _atomic_write(tmp / marker, lambda p: p.write_text(""))
            (tmp / OWNER).unlink()
            os.replace(tmp, self.run_dir)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FolderError(f"cannot write {self.run_dir}: {exc.strerror or exc}") from exc
        return self.run_dir

    def write(
        self,
        records: list[Record],
        config: dict[str, Any],
        embeddings: tuple[list[str], np.ndarray] | None = None,
    ) -> Path:
        frame = records_frame(records)

        def fill(folder: Path) -> None:
            _atomic_write(folder / CONFIG, lambda p: p.write_text(yaml.safe_dump(config, sort_keys=False)))
            _atomic_write(folder / RECORDS, lambda p: frame.to_parquet(p, index=False))
            if embeddings is not None:
                ids, matrix = embeddings

                def write_npz(p: Path) -> None:
                    with open(p, "wb") as fh:
                        np.savez(fh, ids=np.asarray(ids, dtype=str), embeddings=matrix)

                _atomic_write(folder / EMBEDDINGS, write_npz)

        return self._publish(fill, COMPLETE)

    def write_failure(self, record: Record, config: dict[str, Any], details: str) -> Path:
        """A failed job: its run row (status `error:<kind>`), config and traceback, marked FAILED."""
        frame = records_frame([record])

        def fill(folder: Path) -> None:
            _atomic_write(folder / CONFIG, lambda p: p.write_text(yaml.safe_dump(config, sort_keys=False)))
            _atomic_write(folder / RECORDS, lambda p: frame.to_parquet(p, index=False))
            _atomic_write(folder / ERROR, lambda p: p.write_text(details))

        return self._publish(fill, FAILED)

    def records(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / RECORDS)

    def embeddings(self) -> tuple[list[str], np.ndarray]:
        with np.load(self.run_dir / EMBEDDINGS, allow_pickle=False) as data:
            return [str(i) for i in data["ids"]], data["embeddings"]


def _marked(roots: Iterable[str | Path], marker: str) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if (root / marker).exists():
            found.add(root)
        elif root.is_dir():
            found.update(p.parent for p in root.rglob(marker) if not p.parent.name.startswith(TMP_PREFIX))
    return sorted(found)


def find_runs(*roots: str | Path) -> list[Path]:
    """Every complete run folder below the given folders (or the folders themselves)."""
    return _marked(roots, COMPLETE)


def find_failed(*roots: str | Path) -> list[Path]:
    """Every failed run folder (marked FAILED) below the given folders."""
    return _marked(roots, FAILED)


def completed_run(study_dir: str | Path, chash: str) -> Path | None:
    """The newest complete run folder of a study with this config hash (the resume lookup)."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        return None
    done = sorted(p for p in find_runs(study_dir) if p.parent == study_dir and hash_of(p) == chash)
    return done[-1] if done else None


# Columns every reader computes with: a run whose records hold text there is damaged.
NUMERIC_COLUMNS = ("n_images", "n_ok", "n_errors", "visual_tokens", "visual_tokens_mean", "views_total",
                   "encode_ms", "encode_p50_ms", "preprocess_ms", "total_ms", "value")


def damage(run_dir: str | Path) -> str | None:
    """Why a run folder cannot be read (a truncated `records.parquet`, an `embeddings.npz`
    that is not an archive of ids and a matrix with one row per id), or None when it reads.
    The whole files are read: a damaged tail is found here, not halfway through a report."""
    return _read_checked(Path(run_dir))[1]


def _read_checked(run_dir: Path) -> tuple[pd.DataFrame | None, str | None]:
    """The records of a run folder and None, or None and why the folder cannot be used (`damage`)."""
    store = RunStore(run_dir)
    try:
        records = store.records()
    except Exception as exc:  # noqa: BLE001 - any reader error means the same: unreadable
        return None, f"{RECORDS} unreadable ({type(exc).__name__}: {exc})"
    why = _records_damage(records, run_dir)
    if why is None and (store.run_dir / EMBEDDINGS).exists():
        try:
            ids, matrix = store.embeddings()
        except Exception as exc:  # noqa: BLE001 - zip, pickle or key errors alike
            return None, f"{EMBEDDINGS} unreadable ({type(exc).__name__}: {exc})"
        if matrix.ndim != 2 or len(ids) != len(matrix):
            why = f"{EMBEDDINGS} holds {len(ids)} ids for an array of shape {matrix.shape}"
    return (None, why) if why else (records, None)


def _records_damage(records: pd.DataFrame, run_dir: Path) -> str | None:
    """What makes readable records unusable: no `kind` or run row, text where numbers belong, a
    study name that is unsafe or not its folder's."""
    if "kind" not in records.columns:
        return f"{RECORDS} has no `kind` column"
    if not (records["kind"] == "run").any():
        return f"{RECORDS} has no run row (kind=run): the run never finished writing its summary"
    for column in NUMERIC_COLUMNS:
        if column in records.columns and not (pd.api.types.is_numeric_dtype(records[column])
                                              or records[column].isna().all()):
            return f"{RECORDS} column {column!r} holds {records[column].dtype} values, not numbers"
    studies = {str(s) for s in records["study"].dropna().unique()} if "study" in records.columns else set()
    if len(studies) > 1:
        return f"{RECORDS} names several studies ({', '.join(sorted(studies))})"
    if studies:
        study = studies.pop()
        if not is_safe_name(study):
            return f"{RECORDS} names the study {study[:60]!r}, not a safe name"
        home = run_dir.resolve().parent
        if home.parent.name == "runs" and home.name != study:  # `runs/<study>/<run>`: the folder says the study
            return f"{RECORDS} names the study {study!r} but the folder is in {home.name!r}"
    return None


def load_readable(run_dirs: Iterable[str | Path]) -> tuple[pd.DataFrame, dict[Path, str]]:
    """Records of the run folders that read (see `damage`), and {folder: why} for the others,
    so that one damaged run costs its own rows, never a whole report. Each records file is read
    once."""
    frames, damaged = [], {}
    for run_dir in map(Path, run_dirs):
        records, why = _read_checked(run_dir)
        if records is None:
            damaged[run_dir] = str(why)
        else:
            frames.append(records.assign(run_dir=str(run_dir), run_complete=(run_dir / COMPLETE).exists()))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), damaged


# --- one computation per configuration ------------------------------------------------------

LOCK_SUFFIX = ".lock"


class ConfigBusy(RuntimeError):
    """Another live process holds this configuration's lock (and we were told not to wait)."""


class UnreadableLock(ConfigError):
    """A lock file that names no process (garbage): nobody can tell whether it is stale, so it
    is named with how to clear it instead of being waited on forever (exit 2)."""


def _lock_path(study_dir: Path, chash: str) -> Path:
    return study_dir / f".{chash}{LOCK_SUFFIX}"


def _process_start(pid: int) -> float | None:
    """Start time of a live process (pid reuse check), None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # exists but unreadable (another user): alive, start unknown
        return -1.0


def _owner() -> dict[str, Any]:
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid())}


def lock_holder_alive(owner: dict[str, Any]) -> bool:
    """Whether the process a lock names still runs. Only a lock of this host can be checked
    (pid and start time); a lock of another host is taken as alive."""
    import socket

    if owner.get("host") != socket.gethostname():
        return True
    start = _process_start(int(owner.get("pid", -1)))
    if start is None:
        return False
    return start == -1.0 or owner.get("start") in (None, start)


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # garbage: an owner we cannot check
    return owner if isinstance(owner, dict) and "pid" in owner else {}


def _break_stale(path: Path, seen: dict[str, Any]) -> None:
    """Remove a dead process's lock without removing a live one that replaced it meanwhile: move
    it aside (atomic), and put it back (link, never overwriting) if it is not the one we judged."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if _read_owner(aside) != seen:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


@contextmanager
def config_lock(
    study_dir: str | Path, chash: str, *, wait: bool = True, timeout_s: float | None = None,
    poll_s: float = 0.2, on_wait: Any = None,
) -> Iterator[Path]:
    """Hold the lock of one configuration (`<study_dir>/.<hash>.lock`, hard-linked into place
    exclusively, holding pid, host and process start) while computing it. A lock whose process is dead
    (same host, pid gone or reused) is broken. When a live process holds it: wait (polling;
    `on_wait(owner)` is called once) until it is released, or raise ConfigBusy if `wait` is
    false or `timeout_s` passes. A lock that names no process raises UnreadableLock (exit 2)."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_path(study_dir, chash)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    told = False
    mine = path.with_name(f"{path.name}.{os.getpid()}")
    mine.write_text(json.dumps(_owner()))  # linked into place whole: a lock is never seen half-written
    try:
        while True:
            try:
                os.link(mine, path)
                break
            except FileExistsError:
                pass
            owner = _read_owner(path)
            if owner is None:
                continue  # released between our two looks
            if not owner:  # locks are linked into place whole, so this is not one being written
                raise UnreadableLock(f"lock file {path} is not a harness lock (no owner in it); if no harness "
                                     f"process is computing this configuration, remove it: rm {path}")
            if not lock_holder_alive(owner):
                _break_stale(path, owner)
                continue
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise ConfigBusy(f"configuration {chash} is being computed by {owner or 'an unknown owner'} "
                                 f"(lock {path}; remove it if no such process runs)")
            if not told and on_wait is not None:
                on_wait(owner)
                told = True
            time.sleep(poll_s)
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def claim_config(
    study_dir: str | Path, chash: str, *, rerun: bool = False, wait: bool = True, timeout_s: float | None = None,
    on_wait: Any = None,
) -> Iterator[Path | None]:
    """The resume step under the configuration's lock: yields the complete run folder to skip
    to, or None when the caller must compute (the lock is held until the block ends, so a
    second process started together waits, then finds the first one's result). `rerun` computes
    even when a complete run exists. With `wait=False` a busy configuration raises ConfigBusy."""
    with config_lock(study_dir, chash, wait=wait, timeout_s=timeout_s, on_wait=on_wait):
        yield None if rerun else completed_run(study_dir, chash)
