"""What every preprocessing strategy is: plan geometry from a size, then cut pixels to plan."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from harness.types import Layout, Views

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Strategy(ABC):
    """A preprocessing strategy.

    `plan(width, height)` is pure geometry (fast enough for token sweeps over millions of
    sizes); `apply(image)` produces the normalised crops that `plan` promised.
    Subclasses take their parameters as keyword arguments; `tile_size`, `mean` and `std`
    are common to all and default to the encoder's when the config leaves them null.
    """

    name: ClassVar[str]

    def __init__(
        self,
        *,
        tile_size: int = 336,
        mean: tuple[float, float, float] = OPENAI_CLIP_MEAN,
        std: tuple[float, float, float] = OPENAI_CLIP_STD,
    ) -> None:
        if int(tile_size) <= 0:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        self.tile_size = int(tile_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._scale = (1.0 / (255.0 * np.asarray(self.std, dtype=np.float32))).astype(np.float32)
        self._shift = (np.asarray(self.mean, dtype=np.float32) / np.asarray(self.std, dtype=np.float32)).astype(
            np.float32
        )

    @abstractmethod
    def plan(self, width: int, height: int) -> Layout:
        """The Layout for an image of this size, without touching pixels."""

    @abstractmethod
    def crops(self, image: Image.Image, layout: Layout) -> list[Image.Image]:
        """The RGB crops (each tile_size x tile_size) in encoder order, as the plan says."""

    def params(self) -> dict[str, Any]:
        """The parameters that identify this strategy in records."""
        return {"tile_size": self.tile_size, "mean": list(self.mean), "std": list(self.std)}

    def apply(self, image: Image.Image) -> Views:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        layout = self.plan(*rgb.size)
        pixel_values = self.normalize(self.crops(rgb, layout))
        if pixel_values.shape[0] != layout.executed_views:
            raise AssertionError(
                f"{self.name}: produced {pixel_values.shape[0]} crops, plan said {layout.executed_views}"
            )
        return Views(pixel_values=pixel_values, layout=layout)

    def normalize(self, crops: list[Image.Image]) -> torch.Tensor:
        """uint8 RGB crops -> float32 `[n, 3, S, S]`, (x/255 - mean) / std."""
        arr = np.stack([np.asarray(c, dtype=np.uint8) for c in crops]).astype(np.float32)
        arr *= self._scale
        arr -= self._shift
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
