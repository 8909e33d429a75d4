"""CLIP's preprocessing: shortest edge to tile_size, long edge truncated, then a center crop.

Follows transformers' CLIPImageProcessorPil: the long side becomes `int(S * long / short)`
(`get_resize_output_image_size`, default_to_square=False) and the crop offsets are floored,
`(H - S) // 2` (`image_transforms.center_crop`). torchvision's CenterCrop, used by openai/CLIP,
rounds half to even instead and differs by 1 px for some sizes (e.g. 671x336).
"""

from __future__ import annotations

from typing import Any

import torch

from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, Strategy, check_image_size
from harness.types import Layout


def shortest_edge_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after resizing the short side to `size`; same float expression as transformers."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


@STRATEGIES.register("center_crop")
class CenterCrop(Strategy):

    def plan(self, width: int, height: int) -> Layout:
        check_image_size(width, height)
        s = self.tile_size
        return self._layout(
            width, height, grid=(1, 1), resized_size=shortest_edge_size(width, height, s), canvas_size=(s, s),
            content_box=(0, 0, s, s), has_global=False, global_position=None, n_views=1, executed_views=1,
        )

    def crop_offset(self, layout: Layout) -> tuple[int, int]:
        """(left, top) of the crop inside the resized image (floored, as transformers)."""
        w, h = layout.resized_size
        return (w - self.tile_size) // 2, (h - self.tile_size) // 2

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        """Only the crop of the resize is computed (the same bytes: each output pixel has its own taps)."""
        s = self.tile_size
        left, top = self.crop_offset(layout)
        out = self.new_views(layout)
        crop = self.ops.resize(pixels, layout.resized_size, BICUBIC, window=(left, top, s, s))
        self.normalize_tiles(crop, 1, 1, out)
        return out
