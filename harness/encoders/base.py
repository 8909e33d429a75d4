"""What every encoder is: a backbone that turns crops into patch features, plus a connector
that turns one image's patch features into the LLM-facing token sequence."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from harness.runtime import Runtime
from harness.types import EncoderOutput, Layout, Views

ENCODER_SIZES = ("full", "tiny")


class Encoder(ABC):
    """Base class for encoders.

    Subclasses set `name`, `tile_size`, `patch_size`, `mean`, `std`, build `self.model` and
    implement `backbone(pixels) -> [N, P, C]` patch features (CLS dropped),
    `connect(features, layout) -> [T, D]` tokens, and `num_tokens(layout)`, which must equal
    `connect(...).shape[0]` without running anything.
    """

    name: ClassVar[str]
    tile_size: ClassVar[int]
    patch_size: ClassVar[int]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]

    def __init__(self, *, size: str, weights: str, runtime: Runtime, batch_views: int = 16) -> None:
        if size not in ENCODER_SIZES:
            raise ValueError(f"encoder size must be one of {', '.join(ENCODER_SIZES)}; got {size!r}")
        if batch_views <= 0:
            raise ValueError(f"batch_views must be positive, got {batch_views}")
        self.size = size
        self.weights = weights
        self.runtime = runtime
        self.batch_views = int(batch_views)

    # --- to implement -------------------------------------------------------------------
    @abstractmethod
    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch features `[N, P, C]` for `N` crops on the runtime device."""

    @abstractmethod
    def connect(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """One image's LLM-facing tokens `[T, D]` from its crops' patch features."""

    @abstractmethod
    def num_tokens(self, layout: Layout) -> int:
        """Visual tokens for this layout, without a forward pass."""

    # --- shared -------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "encoder_size": self.size,
            "weights": self.weights,
            "tile_size": self.tile_size,
            "patch_size": self.patch_size,
        }

    def pool(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Pooled embedding for quality metrics: mean of backbone patch features over the
        views that carry content (padding crops excluded)."""
        return features[: layout.n_views].float().mean(dim=(0, 1))

    @torch.inference_mode()
    def encode(self, batch: list[Views]) -> tuple[list[EncoderOutput], dict[str, float]]:
        """Encode the crops of several images, `batch_views` crops per backbone call.

        Returns one EncoderOutput per image and the seconds spent per stage for the whole
        batch: `h2d` (host to device copy), `backbone`, `connector`.
        """
        rt = self.runtime
        counts = [v.pixel_values.shape[0] for v in batch]
        pixels = torch.cat([v.pixel_values for v in batch])
        t0 = time.perf_counter()
        pixels = pixels.to(rt.device, dtype=rt.dtype, non_blocking=True)
        rt.synchronize()
        t1 = time.perf_counter()
        feats = torch.cat([self.backbone(chunk) for chunk in pixels.split(self.batch_views)])
        rt.synchronize()
        t2 = time.perf_counter()
        outputs = []
        for views, feat in zip(batch, feats.split(counts), strict=True):
            tokens = self.connect(feat, views.layout)
            outputs.append(EncoderOutput(tokens=tokens.float().cpu(), pooled=self.pool(feat, views.layout).cpu()))
        rt.synchronize()
        t3 = time.perf_counter()
        return outputs, {"h2d": t1 - t0, "backbone": t2 - t1, "connector": t3 - t2}
