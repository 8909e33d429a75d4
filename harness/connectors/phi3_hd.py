"""`phi3_hd`: Phi-3-vision's HD embedding (docs/encoders.md)."""

from __future__ import annotations

import torch
from torch import nn

from harness.connectors.base import CONNECTORS, Connector, require_global_first
from harness.types import Layout


def merge_2x2(features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Phi-3's `reshape_hd_patches_2x2merge`: `[rows*cols, g*g, C]` crops (row-major) ->
    `[rows*g/2, cols*g/2, 4C]`, each vector the 2x2 patch block concatenated."""
    n, length, c = features.shape
    g = round(length**0.5)
    m = g // 2
    return (
        features.reshape(n, g, g, c)
        .reshape(n, m, 2, m, 2, c)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(n, m * m, 4 * c)
        .reshape(rows, cols, m, m, 4 * c)
        .permute(0, 2, 1, 3, 4)
        .reshape(rows * m, cols * m, 4 * c)
    )


@CONNECTORS.register("phi3_hd")
class Phi3HD(Connector):
    """Phi-3-vision's HD embedding (`Phi3HDImageEmbedding.hd_feature_transform`).

    2x2 merge (24x24 -> 12x12 vectors of 4C), a learnable `sub_GN` after every row of the
    sub-image grid and of the global view, one `glb_GN` between them, then the projection.
    `sub_glb` (Phi-3-vision): sub-images, glb_GN, global; `glb_sub`: global, glb_GN, sub-images.
    """

    needs = "phi3_hd"
    ORDERS = ("sub_glb", "glb_sub")
    PROJECTIONS = ("linear", "mlp")
    no_reduction = (
        "its HD transform puts a sub_GN after every row of the 2x2-merged grid of the sub-image canvas and of "
        "the global view, and a reduced set has no rows; use reduce=none, or encoder.connector=flat"
    )

    def __init__(
        self, *, in_dim: int, out_dim: int, grid_side: int, projection: str = "mlp", hd_transform_order: str = "sub_glb"
    ) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        if hd_transform_order not in self.ORDERS:
            raise ValueError(f"hd_transform_order must be one of {', '.join(self.ORDERS)}; got {hd_transform_order!r}")
        if projection not in self.PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(self.PROJECTIONS)}; got {projection!r}")
        if grid_side % 2:
            raise ValueError(f"phi3_hd needs an even patch grid, got {grid_side}")
        self.hd_transform_order = hd_transform_order
        dim = 4 * in_dim
        self.glb_GN = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.sub_GN = nn.Parameter(torch.randn(1, 1, 1, dim) * 0.02)
        if projection == "linear":
            self.img_projection: nn.Module = nn.Linear(dim, out_dim)
        else:
            self.img_projection = nn.Sequential(nn.Linear(dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    @classmethod
    def check(cls, layout: Layout) -> None:
        require_global_first(cls.name, layout, cls.needs)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        rows, cols = layout.grid
        m = grid_side // 2
        return rows * m * (cols * m + 1) + 1 + m * (m + 1)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """`[H, W, 4C]` -> `[H*(W+1), 4C]`: a sub_GN after each row."""
        h = grid.shape[0]
        sep = self.sub_GN.reshape(1, 1, -1).expand(h, 1, -1).to(grid.dtype)
        return torch.cat([grid, sep], dim=1).reshape(-1, grid.shape[-1])

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        rows, cols = layout.grid
        glb = self._with_newlines(merge_2x2(features[:1], 1, 1))
        sub = self._with_newlines(merge_2x2(features[1 : 1 + rows * cols], rows, cols))
        sep = self.glb_GN.reshape(1, -1).to(features.dtype)
        parts = [sub, sep, glb] if self.hd_transform_order == "sub_glb" else [glb, sep, sub]
        return self.img_projection(torch.cat(parts))
