"""Writing and finding run records. A run folder counts only once `COMPLETE` exists, and every
file in it is written to a temporary name and renamed, so an interrupted job leaves nothing
that looks finished."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.types import Record

COMPLETE = "COMPLETE"
RECORDS = "records.parquet"
EMBEDDINGS = "embeddings.npz"
CONFIG = "config.yaml"


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


class RunStore:
    """One job's folder: `config.yaml`, `records.parquet`, optional `embeddings.npz`, `COMPLETE`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    @property
    def complete(self) -> bool:
        return (self.run_dir / COMPLETE).exists()

    def write(
        self,
        records: list[Record],
        config: dict[str, Any],
        embeddings: tuple[list[str], np.ndarray] | None = None,
    ) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.run_dir / CONFIG, lambda p: p.write_text(yaml.safe_dump(config, sort_keys=False)))
        frame = records_frame(records)
        _atomic_write(self.run_dir / RECORDS, lambda p: frame.to_parquet(p, index=False))
        if embeddings is not None:
            ids, matrix = embeddings

            def write_npz(p: Path) -> None:
                with open(p, "wb") as fh:
                    np.savez(fh, ids=np.asarray(ids, dtype=str), embeddings=matrix)

            _atomic_write(self.run_dir / EMBEDDINGS, write_npz)
        _atomic_write(self.run_dir / COMPLETE, lambda p: p.write_text(""))
        return self.run_dir

    def records(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / RECORDS)

    def embeddings(self) -> tuple[list[str], np.ndarray]:
        with np.load(self.run_dir / EMBEDDINGS, allow_pickle=False) as data:
            return [str(i) for i in data["ids"]], data["embeddings"]


def find_runs(*roots: str | Path) -> list[Path]:
    """Every complete run folder below the given folders (or the folders themselves)."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if (root / COMPLETE).exists():
            found.add(root)
        elif root.is_dir():
            found.update(p.parent for p in root.rglob(COMPLETE))
    return sorted(found)


def load_records(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    frames = [RunStore(d).records().assign(run_dir=str(d)) for d in run_dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
