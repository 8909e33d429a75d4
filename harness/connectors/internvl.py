"""`internvl`: InternVL's pixel shuffle 0.5 and `mlp1` (docs/encoders.md)."""

from __future__ import annotations

import torch
from torch import nn

from harness.connectors.base import CONNECTORS, Connector
from harness.types import Layout


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
    """InternVL's `pixel_shuffle` with ps_version v2: `[N, g, g, C]` -> `[N, g/2, g/2, 4C]`."""
    n, w, h, c = x.shape
    x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    return x.permute(0, 2, 1, 3).contiguous()


@CONNECTORS.register("internvl")
class InternVL(Connector):
    """InternVL: pixel shuffle 0.5 per crop (g x g x C -> g/2 x g/2 x 4C), then `mlp1`
    (LayerNorm, Linear, GELU, Linear); tokens of all content crops in view order."""


    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        if grid_side % 2:
            raise ValueError(f"internvl pixel shuffle needs an even patch grid, got {grid_side}")
        self.layer_norm = nn.LayerNorm(4 * in_dim)
        self.linear_1 = nn.Linear(4 * in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * (grid_side // 2) ** 2

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = features[: layout.n_views]
        g = self.grid_side
        x = pixel_shuffle(x.reshape(x.shape[0], g, g, -1)).reshape(x.shape[0], -1, 4 * x.shape[-1])
        x = self.linear_2(self.act(self.linear_1(self.layer_norm(x))))
        return x.reshape(-1, x.shape[-1])
