"""Plain squash resize to tile_size x tile_size (InternVL's `build_transform`).

The aspect ratio is not kept; one view, no tiling. With CLIP mean/std at 336 this is also
LLaVA-NeXT's base-image path.
"""

from __future__ import annotations

from PIL import Image

from harness.preprocess import STRATEGIES
from harness.preprocess.base import Strategy
from harness.types import Layout


@STRATEGIES.register("resize")
class Resize(Strategy):
    name = "resize"

    def plan(self, width: int, height: int) -> Layout:
        s = self.tile_size
        return Layout(
            strategy=self.name,
            original_size=(width, height),
            tile_size=s,
            grid=(1, 1),
            resized_size=(s, s),
            canvas_size=(s, s),
            content_box=(0, 0, s, s),
            has_global=False,
            global_position=None,
            n_views=1,
            executed_views=1,
        )

    def crops(self, image: Image.Image, layout: Layout) -> list[Image.Image]:
        s = self.tile_size
        if image.size == (s, s):
            return [image]
        return [image.resize((s, s), Image.Resampling.BICUBIC)]
