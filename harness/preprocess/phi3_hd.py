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
from typing import Any

import torch

from harness.bounds import boolean, bounded_int
from harness.preprocess import STRATEGIES
from harness.preprocess.base import BILINEAR, MAX_TILES, Strategy, check_image_size
from harness.types import Layout


@STRATEGIES.register("phi3_hd")
class Phi3HDTransform(Strategy):
    arithmetic = "torchvision"  # ToTensor + Normalize, as the remote code

    def __init__(self, *, num_crops: int = 16, pad_to_max_crops: bool = True, **common) -> None:
        super().__init__(**common)
        self.num_crops = bounded_int("preprocess.num_crops", num_crops, 1, MAX_TILES)
        self.pad_to_max_crops = boolean("preprocess.pad_to_max_crops", pad_to_max_crops)

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

    def canvas(self, pixels: Any, layout: Layout) -> Any:
        """uint8 `[H_hd, W_hd, C]`: resized and white-padded, in the original orientation.

        Tall images are resized as the transposed image, as in the original, because PIL's
        two-pass resampling rounds between passes and is therefore not transpose-symmetric
        (`Ops.resize_transposed`); the padding is then on the left and right.
        """
        width, height = layout.canvas_size
        left, top, right, bottom = layout.content_box
        canvas = self.ops.canvas(height, width, 255, inside=(left, top, right, bottom))
        region = canvas[top:bottom, left:right]
        if layout.original_size[0] < layout.original_size[1]:
            self.ops.resize_transposed(pixels, (bottom - top, right - left), BILINEAR, out=region)
        else:
            self.ops.resize(pixels, layout.resized_size, BILINEAR, out=region)
        return canvas

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        """Tiles from the canvas; the global view is torch's bicubic interpolation of the
        normalised canvas, as the original computes it (`Ops.cubic_view`)."""
        rows, cols = layout.grid
        canvas = self.canvas(pixels, layout)
        out = self.new_views(layout)
        self.ops.cubic_view(canvas, self._table, out[0])
        self.normalize_tiles(canvas, rows, cols, out[1 : 1 + rows * cols])
        out[1 + rows * cols :] = 0  # the zero crops up to num_crops + 1
        return out
