"""Latency summaries: percentiles and throughput from per-image timings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize_ms(values_ms: Sequence[float], prefix: str) -> dict[str, float]:
    """p50, p95 and mean of a list of milliseconds, keyed `<prefix>_p50_ms` etc.
    Empty input gives NaN, never a made-up zero."""
    arr = np.asarray([v for v in values_ms if v == v], dtype=np.float64)
    if arr.size == 0:
        nan = float("nan")
        return {f"{prefix}_p50_ms": nan, f"{prefix}_p95_ms": nan, f"{prefix}_mean_ms": nan}
    return {
        f"{prefix}_p50_ms": float(np.percentile(arr, 50)),
        f"{prefix}_p95_ms": float(np.percentile(arr, 95)),
        f"{prefix}_mean_ms": float(arr.mean()),
    }
