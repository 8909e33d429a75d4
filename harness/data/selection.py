"""Choosing a subset of a dataset: the same `limit` and `seed` mean the same images everywhere."""

from __future__ import annotations

import random

from harness.bounds import optional_int

MAX_LIMIT = 10**9


def select(n: int, limit: int | None, seed: int | None) -> list[int]:
    """Indices into a sequence of n items, kept in their original order.

    No limit: all. `limit` without a seed: the first `limit`. With a seed: a random sample of
    `limit` (the same for the same seed), still in the dataset's order.
    """
    limit = optional_int("dataset.limit", limit, 0, MAX_LIMIT)
    seed = optional_int("dataset.seed", seed, 0, 2**32 - 1)
    if limit is None or int(limit) >= n:
        return list(range(n))
    if seed is None:
        return list(range(int(limit)))
    return sorted(random.Random(int(seed)).sample(range(n), int(limit)))
