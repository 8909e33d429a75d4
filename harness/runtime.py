"""Device and dtype resolution, and the synchronisation timing needs on CUDA."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def resolve(cls, device: str = "auto", dtype: str = "float32") -> Runtime:
        """`device=auto` picks cuda when available, else cpu; an unknown name fails early."""
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be one of auto, cpu, cuda; got {device!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device=cuda was asked for but no CUDA device is available; use device=auto or cpu")
        return cls(device=torch.device(device), dtype=DTYPES[dtype])

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
