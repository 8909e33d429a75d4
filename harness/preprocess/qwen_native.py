"""Native resolution as Qwen2-VL / Qwen2.5-VL: one view per image, resized so that both sides
are multiples of `factor = patch_size * merge_size` (28) within [min_pixels, max_pixels].

Reference: transformers `Qwen2VLImageProcessorPil` (`smart_resize`, bicubic PIL resize,
float64 rescale then float32 normalise with CLIP mean/std, `patchify`). The view is kept as a
`[1, 3, H, W]` image here; `patchify` turns views into the reference's flat patch rows
(temporal patch of 2 identical frames for a still image). Facts: docs/native_resolution.md.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from harness.bounds import bounded_int
from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, MAX_TILE_SIZE, Strategy, check_image_size
from harness.types import Layout

MAX_ASPECT_RATIO = 200  # smart_resize refuses images whose long/short side ratio exceeds this
# The largest view (`max_pixels`, and so `min_pixels`): 16384 merged patches of 28x28, the value of
# Qwen/Qwen2-VL-7B-Instruct's preprocessor_config.json, as many pixels as MAX_TILES tiles of 448.
MAX_PIXELS = 28 * 28 * 16384


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) of the resized image, as Qwen2-VL's `smart_resize` computes them:
    sides rounded (half to even) to multiples of `factor`; above `max_pixels` both scaled down
    by the same beta and floored (at least `factor`); below `min_pixels` scaled up and ceiled.
    An aspect ratio over 200 is refused, as the reference refuses it."""
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ValueError(
            f"qwen_native: aspect ratio {ratio:.1f} of a {width}x{height} image exceeds {MAX_ASPECT_RATIO} "
            f"(Qwen2-VL's smart_resize refuses it)"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(pixel_values: torch.Tensor, patch_size: int, merge_size: int, temporal_patch_size: int) -> torch.Tensor:
    """`[n, 3, H, W]` views -> `[n * (H/p) * (W/p), 3 * T * p * p]` rows in the reference order:
    merge blocks (m x m patches) row-major, patches row-major inside a block, each row
    (C, T, p, p) with the still frame repeated T times (Qwen2VLImageProcessorPil.patchify)."""
    n, c, h, w = pixel_values.shape
    gh, gw, m, p = h // patch_size, w // patch_size, merge_size, patch_size
    x = pixel_values.reshape(n, c, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
    x = x.unsqueeze(-3).expand(*x.shape[:6], temporal_patch_size, p, p)
    return x.reshape(n * gh * gw, c * temporal_patch_size * p * p)


@STRATEGIES.register("qwen_native")
class QwenNative(Strategy):
    """One view of its own size (multiples of 28), no tiling, no padding."""

    variable_size = True

    def __init__(
        self, *, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280, patch_size: int = 14,
        merge_size: int = 2, temporal_patch_size: int = 2, tile_size: int | None = None, **common: Any,
    ) -> None:
        max_pixels = bounded_int("preprocess.max_pixels", max_pixels, 1, MAX_PIXELS)
        min_pixels = bounded_int("preprocess.min_pixels", min_pixels, 1, max_pixels)
        patch_size = bounded_int("preprocess.patch_size", patch_size, 1, MAX_TILE_SIZE)
        merge_size = bounded_int("preprocess.merge_size", merge_size, 1, MAX_TILE_SIZE // patch_size)
        temporal_patch_size = bounded_int("preprocess.temporal_patch_size", temporal_patch_size, 1, 16)
        factor = int(patch_size) * int(merge_size)
        if tile_size is not None and int(tile_size) != factor:
            raise ValueError(
                f"qwen_native: tile_size is the resize factor patch_size*merge_size = {factor}; got {tile_size} "
                f"(leave it null)"
            )
        super().__init__(tile_size=factor, **common)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.patch_size, self.merge_size = int(patch_size), int(merge_size)
        self.temporal_patch_size = int(temporal_patch_size)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(), "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
            "patch_size": self.patch_size, "merge_size": self.merge_size,
            "temporal_patch_size": self.temporal_patch_size,
        }

    def plan(self, width: int, height: int) -> Layout:
        check_image_size(width, height)
        h, w = smart_resize(height, width, self.tile_size, self.min_pixels, self.max_pixels)
        p = self.patch_size
        return self._layout(
            width, height, grid=(1, 1), resized_size=(w, h), canvas_size=(w, h), content_box=(0, 0, w, h),
            has_global=False, global_position=None, n_views=1, executed_views=1,
            view_size=(w, h), patch_grid=(1, h // p, w // p),
        )

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        out = self.new_views(layout)
        self.normalize_tiles(self.ops.resize(pixels, layout.view_wh, BICUBIC), 1, 1, out)
        return out

    def patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The reference's flat patch rows of this strategy's views (see `patchify`)."""
        return patchify(pixel_values, self.patch_size, self.merge_size, self.temporal_patch_size)
