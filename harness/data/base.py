"""What every dataset is: an indexable, lazily decoded sequence of Samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from harness.identity import component_columns
from harness.types import Sample


class Dataset(ABC):
    """A map-style dataset of Samples. `__getitem__` must be cheap to call from a worker
    process and must not hold decoded images of other items."""

    name: ClassVar[str]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def params(self) -> dict[str, Any]:
        """Parameters that identify this dataset in records."""
        return {}

    def identity(self) -> dict[str, Any]:
        """Record columns: `dataset` and `dataset_params` (JSON)."""
        return component_columns("dataset", self.name, self.params())

    @property
    def has_labels(self) -> bool:
        return False
