"""Datasets: sources of Samples (synthetic, image folders, MME, ...)."""

from __future__ import annotations

from typing import Any

from harness.data.base import Dataset
from harness.registry import Registry, check_kwargs

# Each benchmark folder's `data` module registers its dataset (harness/benchmarks/).
DATASETS: Registry[type[Dataset]] = Registry("dataset", "harness.data", folders=(("harness.benchmarks", "data"),))


def build_dataset(name: str, **params: Any) -> Dataset:
    """Build a registered dataset; unknown names or parameters fail naming the valid ones."""
    cls = DATASETS.get(name)
    check_kwargs(cls, params, f"dataset {name!r}")
    return cls(**params)


__all__ = ["DATASETS", "Dataset", "build_dataset"]
