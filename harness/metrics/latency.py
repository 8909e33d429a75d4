"""Latency summaries (percentiles and throughput from per-image timings) and the machine's
load around a run, so that a latency measured on a busy machine says so."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = (5, 25, 50, 75, 95)
# A run is flagged `timed_under_load` when another harness process runs, or when the 1-minute
# load average, less what this run itself brings (1 + its data workers), exceeds this share of
# the CPU cores.
EXCESS_LOAD_PER_CORE = 0.5


def summarize_ms(values_ms: Sequence[float], prefix: str) -> dict[str, float]:
    """p5, p25, p50, p75, p95 and mean of a list of milliseconds, keyed `<prefix>_p50_ms` etc.
    (numpy's linear interpolation). Empty input gives NaN, never a made-up zero."""
    arr = np.asarray([v for v in values_ms if v == v], dtype=np.float64)
    keys = [f"{prefix}_p{p}_ms" for p in PERCENTILES] + [f"{prefix}_mean_ms"]
    if arr.size == 0:
        return dict.fromkeys(keys, float("nan"))
    values = [float(v) for v in np.percentile(arr, PERCENTILES)] + [float(arr.mean())]
    return dict(zip(keys, values, strict=True))


def _related(me: Any) -> set[int]:
    """This process, its ancestors (a sweep that started it) and descendants (data workers)."""
    pids = {me.pid}
    pids.update(p.pid for p in me.parents())
    pids.update(p.pid for p in me.children(recursive=True))
    return pids


def is_harness_command(cmdline: Sequence[str]) -> bool:
    """A process running the harness: `python -m harness[.x]` or a `harness-*` console script."""
    for i, arg in enumerate(cmdline):
        base = os.path.basename(arg)
        if base.startswith("harness-") or (arg == "-m" and i + 1 < len(cmdline)
                                           and cmdline[i + 1].split(".")[0] == "harness"):
            return True
    return False


def other_harness_processes() -> int:
    """Harness processes on this machine that are not this run, its sweep or its workers."""
    import psutil

    me = psutil.Process()
    mine = _related(me)
    count = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.info["pid"] not in mine and is_harness_command(proc.info["cmdline"] or []):
                count += 1
        except (psutil.Error, TypeError):
            continue
    return count


def machine_load(prefix: str) -> dict[str, Any]:
    """`<prefix>_load_1m` (load average), `<prefix>_cpu_count`, `<prefix>_other_harness`."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        load = float("nan")
    return {f"{prefix}_load_1m": float(load), f"{prefix}_cpu_count": os.cpu_count() or 1,
            f"{prefix}_other_harness": other_harness_processes()}


def under_load(start: dict[str, Any], end: dict[str, Any], own_processes: int = 1) -> bool:
    """Whether the machine was busy with something else at the start or the end of a run."""
    for snap, prefix in ((start, "load_start"), (end, "load_end")):
        if snap.get(f"{prefix}_other_harness", 0) > 0:
            return True
        excess = snap.get(f"{prefix}_load_1m", 0.0) - own_processes
        if excess > EXCESS_LOAD_PER_CORE * snap.get(f"{prefix}_cpu_count", 1):
            return True
    return False
