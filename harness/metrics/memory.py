"""Peak memory: exact device counters on CUDA, sampled resident memory on CPU.

The CPU figure is the peak RSS of this process seen by a sampling thread (every
`interval_s`), so it is approximate and labelled so in records. On CUDA the run peak is
the maximum over batches of the per-batch peaks (each batch resets the device's peak
counters, so the run figure cannot come from the counters alone).
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError (CUDA, also raised as torch.cuda.OutOfMemoryError)
    and for RuntimeErrors whose message says `out of memory` (other backends, older torch)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_cached_memory(device: torch.device) -> None:
    """After an OOM: hand the allocator's cached blocks back before the retry."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


class PeakMemory:
    """Context manager measuring peak memory of what runs inside it, per run and per batch."""

    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self._proc = psutil.Process()
        self._peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_allocated = 0
        self._peak_reserved = 0
        self.result: dict[str, Any] = {}

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak_rss = max(self._peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def batch_start(self) -> None:
        """Reset the device's peak counters so that `batch_end` sees this batch alone."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
            self._fold_counters()
            torch.cuda.reset_peak_memory_stats(self.device)

    def batch_end(self) -> dict[str, float]:
        """Peak allocated and reserved device memory (MiB) since `batch_start`; empty on CPU."""
        if not self.is_cuda:
            return {}
        torch.cuda.synchronize(self.device)
        allocated, reserved = self._fold_counters()
        return {"batch_peak_allocated_mb": allocated / 2**20, "batch_peak_reserved_mb": reserved / 2**20}

    def _fold_counters(self) -> tuple[int, int]:
        allocated = torch.cuda.max_memory_allocated(self.device)
        reserved = torch.cuda.max_memory_reserved(self.device)
        self._peak_allocated = max(self._peak_allocated, allocated)
        self._peak_reserved = max(self._peak_reserved, reserved)
        return allocated, reserved

    def __enter__(self) -> PeakMemory:
        if self.is_cuda:
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
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
            self._fold_counters()
            self.result["peak_allocated_mb"] = self._peak_allocated / 2**20
            self.result["peak_reserved_mb"] = self._peak_reserved / 2**20
