"""What every dataset is: an indexable, lazily decoded sequence of Samples."""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from harness.pipeline.identity import component_columns
from harness.types import Sample

MAX_IMAGE_PIXELS = 2**32  # a decompression-bomb limit above this protects nothing


def digest(content: Any) -> str:
    """A short stable hash of JSON-able content (a dataset's fingerprint)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_entries(root: Path, relative: Iterable[str]) -> list[tuple[str, int | None, int | None]]:
    """(relative path, size, mtime in ns) of each file; None for one that cannot be read."""
    out = []
    for rel in relative:
        try:
            st = os.stat(root / rel)
            out.append((rel, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((rel, None, None))
    return out


class Dataset(ABC):
    """A map-style dataset of Samples. `__getitem__` must be cheap to call from a worker
    process and must not hold decoded images of other items."""

    name: ClassVar[str]
    # The benchmark (harness/benchmarks/<name>/) that prompts, parses and scores this dataset's
    # questions; None: a dataset without questions.
    benchmark: ClassVar[str | None] = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def params(self) -> dict[str, Any]:
        """Parameters that identify this dataset in records."""
        return {}

    @abstractmethod
    def fingerprint(self) -> str:
        """A hash of the data as it is now (files, sizes, mtimes or rows; the generator's
        parameters for generated data): part of the resume key, so that a changed folder is
        measured again instead of resumed from stale records."""

    def identity(self) -> dict[str, Any]:
        """Record columns: `dataset` and `dataset_params` (JSON)."""
        return component_columns("dataset", self.name, self.params())

    @property
    def has_labels(self) -> bool:
        return False
