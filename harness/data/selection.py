"""Choosing a subset of a dataset: the same `limit` and `seed` mean the same images everywhere."""

from __future__ import annotations

import random


def select(n: int, limit: int | None, seed: int | None) -> list[int]:
    """Indices into a sequence of n items, kept in their original order.

    No limit: all. `limit` without a seed: the first `limit`. With a seed: a random sample of
    `limit` (the same for the same seed), still in the dataset's order.
    """
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0 or null, got {limit}")
    if limit is None or int(limit) >= n:
        return list(range(n))
    if seed is None:
        return list(range(int(limit)))
    return sorted(random.Random(int(seed)).sample(range(n), int(limit)))
