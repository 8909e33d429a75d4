"""Plain squash resize to tile_size x tile_size (InternVL's `build_transform`).

The aspect ratio is not kept; one view, no tiling. With CLIP mean/std at 336 this is also
LLaVA-NeXT's base-image path. Reference: GotOcr2ImageProcessorPil(crop_to_patches=False).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, Strategy, check_image_size, tiles_chw
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

    def crops(self, image: Image.Image, layout: Layout) -> np.ndarray:
        s = self.tile_size
        out = np.empty((1, 3, s, s), dtype=np.uint8)
        tiles_chw(self.resize(image, (s, s), BICUBIC), 1, 1, s, out)
        return out
