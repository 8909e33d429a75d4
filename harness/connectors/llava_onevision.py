"""`llava_onevision`: LLaVA-NeXT's arrangement with OneVision's `anyres_max_9` shrink of the
unpadded feature grid (docs/native_resolution.md)."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.connectors.base import CONNECTORS
from harness.connectors.llava_next import LlavaNext, unpadded_grid
from harness.types import Layout


def onevision_grid(ch: int, cw: int, grid_side: int, max_tiles: int) -> tuple[int, int]:
    """LLaVA-OneVision's `anyres_max_N` rule on an unpadded feature grid: when it holds more
    than ~N tiles' patches (ratio sqrt(h*w / (N*g^2)) > 1.1), shrink both sides to
    `int(side // ratio)` (float floor division, as `LlavaOnevisionModel.pack_image_features`)."""
    ratio = math.sqrt(ch * cw / (max_tiles * grid_side**2))
    if ratio > 1.1:
        return int(ch // ratio), int(cw // ratio)
    return ch, cw


@CONNECTORS.register("llava_onevision")
class LlavaOnevision(LlavaNext):
    """LLaVA-OneVision (`anyres_max_9`): the LLaVA-NeXT arrangement (projector, base view
    first, unpadded tile grid, one `image_newline` per row) with the tile grid shrunk
    bilinearly (`F.interpolate`, align_corners False) to at most ~9 tiles' worth of patches
    before the newlines are added."""

    needs = "llava_onevision (or llava_anyres)"
    MAX_TILES = 9  # anyres_max_9, the setting of every released OneVision checkpoint
    no_reduction = (
        "its anyres_max_9 shrink interpolates the unpadded tile grid, and a reduced set has no grid; "
        "use reduce=none"
    )

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        ch, cw = unpadded_grid(*layout.grid, grid_side, *layout.original_size)
        h, w = onevision_grid(ch, cw, grid_side, cls.MAX_TILES)
        return grid_side**2 + h * (w + 1)

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        base, grid = self.project_and_unpad(features, layout)
        d, ch, cw = grid.shape
        h, w = onevision_grid(ch, cw, self.grid_side, self.MAX_TILES)
        if (h, w) != (ch, cw):
            grid = nn.functional.interpolate(grid[None], [h, w], mode="bilinear")[0]
        newline = self.image_newline[:, None, None].expand(d, h, 1).to(grid.dtype)
        grid = torch.cat([grid, newline], dim=-1).flatten(1, 2).transpose(0, 1)
        return torch.cat([base, grid])
