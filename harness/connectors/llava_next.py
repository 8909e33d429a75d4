"""`llava_next`: LLaVA-NeXT's projector, unpadded tile grid and image newlines (docs/encoders.md)."""

from __future__ import annotations

import torch
from torch import nn

from harness.connectors.base import CONNECTORS, Connector, require_global_first
from harness.types import Layout


def unpadded_grid(rows: int, cols: int, grid_side: int, width: int, height: int) -> tuple[int, int]:
    """LLaVA-NeXT's unpadded feature grid (rows, cols) for an image of `width x height`, as
    transformers' `unpad_image` computes it (`int(round(x, 7))`)."""
    ch, cw = grid_side * rows, grid_side * cols
    if width / height > cw / ch:
        new_h = int(round(height * (cw / width), 7))
        ch -= 2 * ((ch - new_h) // 2)
    else:
        new_w = int(round(width * (ch / height), 7))
        cw -= 2 * ((cw - new_w) // 2)
    return ch, cw


@CONNECTORS.register("llava_next")
class LlavaNext(Connector):
    """LLaVA-NeXT: 2-layer MLP projector, base view first, then the tiles' feature grid
    unpadded to the image content and one `image_newline` after each row."""

    needs = "llava_anyres"
    # Reduced: each content view (base, then tiles) projected by the MLP, in view order, without
    # unpad or newlines (as VisionZip's LLaVA-NeXT path; docs/token_reduction.md).
    no_reduction = None

    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)
        self.image_newline = nn.Parameter(torch.randn(out_dim) * out_dim**-0.5)

    @classmethod
    def check(cls, layout: Layout) -> None:
        require_global_first(cls.name, layout, cls.needs)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        ch, cw = unpadded_grid(*layout.grid, grid_side, *layout.original_size)
        return grid_side**2 + ch * cw + ch

    def project_reduced(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(tokens)))

    def project_and_unpad(self, features: torch.Tensor, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected base view `[g*g, D]` and the tiles' feature grid `[D, ch, cw]` cut to the
        image content (what LLaVA-NeXT and LLaVA-OneVision share before their newlines)."""
        rows, cols = layout.grid
        g = self.grid_side
        x = self.linear_2(self.act(self.linear_1(features[: layout.n_views])))
        base, tiles = x[0], x[1:]
        d = x.shape[-1]
        grid = tiles.reshape(rows, cols, g, g, d).permute(4, 0, 2, 1, 3).reshape(d, rows * g, cols * g)
        ch, cw = unpadded_grid(rows, cols, g, *layout.original_size)
        top, left = (rows * g - ch) // 2, (cols * g - cw) // 2
        return base, grid[:, top : top + ch, left : left + cw]

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        base, grid = self.project_and_unpad(features, layout)
        d, ch = grid.shape[0], grid.shape[1]
        newline = self.image_newline[:, None, None].expand(d, ch, 1).to(grid.dtype)
        grid = torch.cat([grid, newline], dim=-1).flatten(1, 2).transpose(0, 1)
        return torch.cat([base, grid])
