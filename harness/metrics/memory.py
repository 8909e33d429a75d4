"""Peak memory: exact device counters on CUDA, sampled resident memory on CPU.

The CPU figure is the peak RSS of this process seen by a sampling thread (every
`interval_s`), so it is approximate and labelled so in records.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import torch


class PeakMemory:
    """Context manager measuring peak memory of what runs inside it."""

    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self._proc = psutil.Process()
        self._peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: dict[str, Any] = {}

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak_rss = max(self._peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak_rss = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak_rss = max(self._peak_rss, self._proc.memory_info().rss)
        self.result = {"peak_rss_mb": self._peak_rss / 2**20, "peak_rss_approx": True}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.result["peak_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.result["peak_reserved_mb"] = torch.cuda.max_memory_reserved(self.device) / 2**20
