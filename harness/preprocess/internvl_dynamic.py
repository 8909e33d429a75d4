"""InternVL / Vintern dynamic tiling (`dynamic_preprocess`), as transformers' GotOcr2 PIL processor.

Candidate grids (i cols, j rows) with min_tiles <= i*j <= max_tiles, ordered by tile count
(transformers' order: width-major, stable sort by area). The grid whose ratio i/j is closest to
W/H wins; on an exact float tie a later (larger) grid wins while the image area exceeds half of
its canvas area. The image is squashed (bicubic) to (i*S, j*S) and cut row-major; a thumbnail
(squash of the original to S x S) goes last when there is more than one tile and `thumbnail` is
on. InternVL's `load_image` uses max 12 with thumbnail; its training code and Vintern demos
use max 6.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.bounds import boolean, bounded_int
from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, MAX_TILES, Strategy, check_image_size
from harness.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD
from harness.types import Layout


def candidate_grids(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    """(cols, rows) candidates in transformers' order (`get_all_supported_aspect_ratios`)."""
    span = range(1, max_tiles + 1)
    grids = [(i, j) for i in span for j in span if min_tiles <= i * j <= max_tiles]
    return sorted(grids, key=lambda g: g[0] * g[1])


@STRATEGIES.register("internvl_dynamic")
class InternVLDynamic(Strategy):
    default_tile_size = 448
    default_mean = IMAGENET_MEAN
    default_std = IMAGENET_STD

    def __init__(self, *, min_tiles: int = 1, max_tiles: int = 12, thumbnail: bool = True, **common) -> None:
        super().__init__(**common)
        max_tiles = bounded_int("preprocess.max_tiles", max_tiles, 1, MAX_TILES)
        min_tiles = bounded_int("preprocess.min_tiles", min_tiles, 1, max_tiles)
        self.min_tiles, self.max_tiles = min_tiles, max_tiles
        self.thumbnail = boolean("preprocess.thumbnail", thumbnail)
        half_tile_area = 0.5 * self.tile_size * self.tile_size
        # (cols, rows, ratio, area threshold of the tie rule), precomputed for plan's speed.
        self._candidates = [(i, j, i / j, half_tile_area * i * j) for i, j in candidate_grids(min_tiles, max_tiles)]

    def params(self) -> dict:
        own = {"min_tiles": self.min_tiles, "max_tiles": self.max_tiles, "thumbnail": self.thumbnail}
        return {**super().params(), **own}

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """(rows, cols): closest ratio, exact-tie rule of `find_closest_aspect_ratio`."""
        aspect = width / height
        area = width * height
        best_diff, best_cols, best_rows = float("inf"), 1, 1
        for cols, rows, ratio, threshold in self._candidates:
            diff = abs(aspect - ratio)
            if diff < best_diff:
                best_diff, best_cols, best_rows = diff, cols, rows
            elif diff == best_diff and area > threshold:
                best_cols, best_rows = cols, rows
        return best_rows, best_cols

    def plan(self, width: int, height: int) -> Layout:
        if width <= 0 or height <= 0:
            check_image_size(width, height)
        s = self.tile_size
        rows, cols = self.grid(width, height)
        has_global = self.thumbnail and rows * cols > 1
        n_views = rows * cols + has_global
        canvas = (cols * s, rows * s)
        return self._layout(
            width, height, grid=(rows, cols), resized_size=canvas, canvas_size=canvas, content_box=(0, 0, *canvas),
            has_global=has_global, global_position="last" if has_global else None, n_views=n_views,
            executed_views=n_views,
        )

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        s = self.tile_size
        rows, cols = layout.grid
        out = self.new_views(layout)
        self.normalize_tiles(self.ops.resize(pixels, layout.canvas_size, BICUBIC), rows, cols, out[: rows * cols])
        if layout.has_global:
            self.normalize_tiles(self.ops.resize(pixels, (s, s), BICUBIC), 1, 1, out[-1:])
        return out
