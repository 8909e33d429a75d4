"""Phi-3(.5)-vision HD transform (`HD_transform` in the HF Hub remote code `image_processing_phi3_v.py`).

Tall images are transposed (Image.TRANSPOSE) so that W >= H; the column count `scale` is the
largest with scale * ceil(scale / ratio) <= num_crops; the image is resized with
torchvision's default filter (bilinear; on a PIL image that is PIL bilinear) to
`new_w = scale * S`, `new_h = int(new_w / ratio)`, padded with white top and bottom to a
multiple of S, and transposed back. The global view is a bicubic, non-antialiased
`F.interpolate` of the normalised padded canvas to S x S and goes first; the tiles follow
row-major; zero crops pad to num_crops + 1 (`pad_to_max_crops`), which the original encodes.
When `new_w / ratio` truncates to 0 (aspect > new_w, where the original fails in resize),
the height is clamped to 1 px.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.preprocess import STRATEGIES
from harness.preprocess.base import BILINEAR, Strategy, check_image_size
from harness.types import Layout


@STRATEGIES.register("phi3_hd")
class Phi3HDTransform(Strategy):
    arithmetic = "torchvision"  # ToTensor + Normalize, as the remote code

    def __init__(self, *, num_crops: int = 16, pad_to_max_crops: bool = True, **common) -> None:
        super().__init__(**common)
        if int(num_crops) < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.num_crops, self.pad_to_max_crops = int(num_crops), bool(pad_to_max_crops)

    def params(self) -> dict:
        return {**super().params(), "num_crops": self.num_crops, "pad_to_max_crops": self.pad_to_max_crops}

    def hd_size(self, width: int, height: int) -> tuple[bool, int, int, int]:
        """(transposed, new_w, new_h, padded_h) in the landscape frame (`calc_hd_transform_size`)."""
        transposed = width < height
        if transposed:
            width, height = height, width
        ratio = width / height
        scale = 1
        while scale * math.ceil(scale / ratio) <= self.num_crops:
            scale += 1
        scale -= 1
        new_w = int(scale * self.tile_size)
        new_h = max(1, int(new_w / ratio))
        padded_h = math.ceil(new_h / self.tile_size) * self.tile_size
        return transposed, new_w, new_h, padded_h

    def plan(self, width: int, height: int) -> Layout:
        if width <= 0 or height <= 0:
            check_image_size(width, height)
        s = self.tile_size
        transposed, new_w, new_h, padded_h = self.hd_size(width, height)
        top = (padded_h - new_h) // 2
        rows, cols = padded_h // s, new_w // s
        resized, canvas, box = (new_w, new_h), (new_w, padded_h), (0, top, new_w, top + new_h)
        if transposed:
            rows, cols = cols, rows
            resized, canvas, box = resized[::-1], canvas[::-1], (top, 0, top + new_h, new_w)
        n_views = 1 + rows * cols
        executed = self.num_crops + 1 if self.pad_to_max_crops else n_views
        return self._layout(
            width, height, grid=(rows, cols), resized_size=resized, canvas_size=canvas, content_box=box,
            has_global=True, global_position="first", n_views=n_views, executed_views=executed,
        )

    def canvas(self, image: Image.Image, layout: Layout) -> np.ndarray:
        """uint8 `[H_hd, W_hd, 3]`: resized and white-padded, in the original orientation.

        The resize runs on the transposed image as in the original, because PIL's two-pass
        resampling rounds between passes and is therefore not transpose-symmetric.
        """
        transposed = layout.original_size[0] < layout.original_size[1]
        w, h = layout.resized_size
        left, top = layout.content_box[:2]
        if transposed:
            image, (w, h), top = image.transpose(Image.Transpose.TRANSPOSE), (h, w), left
        padded_h = layout.canvas_size[0] if transposed else layout.canvas_size[1]
        canvas = np.full((padded_h, w, 3), 255, dtype=np.uint8)
        canvas[top : top + h] = self.resize(image, (w, h), BILINEAR)
        return canvas.transpose(1, 0, 2) if transposed else canvas

    def crops(self, image: Image.Image, layout: Layout) -> np.ndarray:
        """The tiles only (uint8); the global view is made from the normalised canvas in `views`."""
        s, (rows, cols) = self.tile_size, layout.grid
        canvas = self.canvas(image, layout)
        return np.ascontiguousarray(canvas.reshape(rows, s, cols, s, 3).transpose(0, 2, 4, 1, 3)).reshape(-1, 3, s, s)

    def views(self, rgb: Image.Image, layout: Layout) -> torch.Tensor:
        s, (rows, cols) = self.tile_size, layout.grid
        canvas = self.canvas(rgb, layout)
        hd = self.normalize(canvas.transpose(2, 0, 1)[None])  # [1, 3, H, W], as ToTensor + Normalize
        out = torch.empty((layout.executed_views, 3, s, s), dtype=torch.float32)
        out[1 + rows * cols :] = 0  # the zero crops up to num_crops + 1
        out[0] = F.interpolate(hd, size=(s, s), mode="bicubic")[0]
        out[1 : 1 + rows * cols].view(rows, cols, 3, s, s).copy_(hd[0].view(3, rows, s, cols, s).permute(1, 3, 0, 2, 4))
        return out
