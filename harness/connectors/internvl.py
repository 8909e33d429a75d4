"""`internvl`: InternVL's pixel shuffle 0.5 and `mlp1` (docs/encoders.md)."""

from __future__ import annotations

import torch
from torch import nn

from harness.connectors.base import CONNECTORS, Connector
from harness.reduce.base import ViewFeatures
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
    (LayerNorm, Linear, GELU, Linear); tokens of all content crops in view order.
    Reduced: the pixel-shuffled g/2 x g/2 grid of each view (no CLS: InternVL drops it) with
    its scores pooled over each 2x2 block, then `mlp1`."""

    no_reduction = None

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

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """`[V, g*g, c]` -> `[V, (g/2)^2, 4c]`: the pixel shuffle of each view's patch grid."""
        v, g = x.shape[0], self.grid_side
        return pixel_shuffle(x.reshape(v, g, g, -1)).reshape(v, -1, 4 * x.shape[-1])

    def project_reduced(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(self.layer_norm(tokens))))

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.project_reduced(self.shuffle(features[: layout.n_views]))
        return x.reshape(-1, x.shape[-1])

    @classmethod
    def reduction_grid(cls, grid_side: int) -> tuple[tuple[int, int], bool]:
        return (grid_side // 2, grid_side // 2), False

    def arrange_reduced(self, features: torch.Tensor, scores: dict[str, torch.Tensor], layout: Layout) -> ViewFeatures:
        """Features and keys shuffled as the connector shuffles them; attention summed per 2x2 block."""
        n = layout.n_views
        s = {k: v[:n] for k, v in scores.items()}
        for key in ("cls_attn", "pm_attn"):
            if key in s:
                s[key] = self.shuffle(s[key].unsqueeze(-1)).sum(-1)
        for key in ("keys", "pm_keys"):
            if key in s:
                s[key] = self.shuffle(s[key])
        g = self.grid_side // 2
        return ViewFeatures(patches=self.shuffle(features[:n, 1:]), grid=(g, g), cls=None, **s)
