"""Plain squash resize to tile_size x tile_size (InternVL's `build_transform`).

The aspect ratio is not kept; one view, no tiling. With CLIP mean/std at 336 this is also
LLaVA-NeXT's base-image path. Reference: GotOcr2ImageProcessorPil(crop_to_patches=False).
"""

from __future__ import annotations

from typing import Any

import torch

from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, Strategy, check_image_size
from harness.types import Layout


@STRATEGIES.register("resize")
class Resize(Strategy):

    def plan(self, width: int, height: int) -> Layout:
        check_image_size(width, height)
        s = self.tile_size
        return self._layout(
            width, height, grid=(1, 1), resized_size=(s, s), canvas_size=(s, s), content_box=(0, 0, s, s),
            has_global=False, global_position=None, n_views=1, executed_views=1,
        )

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        s = self.tile_size
        out = self.new_views(layout)
        self.normalize_tiles(self.ops.resize(pixels, (s, s), BICUBIC), 1, 1, out)
        return out
