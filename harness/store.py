"""Writing and finding run records.

A job builds its folder under a hidden temporary name (`.tmp-<run id>`), writes `COMPLETE`
last and renames the folder into place, so an interrupted job leaves nothing that looks
finished or partial (a stale `.tmp-*` folder is ignored by every reader and by resume).

A job that fails writes a `FAILED` folder instead: `records.parquet` with one `kind=run`
row (`status=error:<kind>`, the message), the config and `error.txt` (the traceback). Resume
looks only for `COMPLETE`, so it retries failed configurations; tables keep them, marked.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

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
        tmp.mkdir(parents=True)
        fill(tmp)
        _atomic_write(tmp / marker, lambda p: p.write_text(""))
        os.replace(tmp, self.run_dir)
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


def load_records(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """The records of these run folders, each row with its `run_dir` and `run_complete`
    (False for a FAILED folder)."""
    frames = [RunStore(d).records().assign(run_dir=str(d), run_complete=(Path(d) / COMPLETE).exists())
              for d in run_dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
