"""`qwen_merger`: Qwen2.5-VL's patch merger, which runs inside the ViT (docs/native_resolution.md)."""

from __future__ import annotations

import torch

from harness.connectors.base import CONNECTORS, Connector, LayoutError
from harness.types import Layout


@CONNECTORS.register("qwen_merger")
class QwenMerger(Connector):
    """Qwen2.5-VL: the backbone's own `PatchMerger` (2x2 patches -> one LM token, RMSNorm +
    MLP to the LM width) already ran inside the ViT; the tokens of each content view come out
    in the view's row-major merged-grid order, (H/28)*(W/28) per view. This connector keeps the
    content views' tokens (padding crops dropped). Input: `[executed_views, tokens_per_view, D]`."""

    owner = "qwen2_5_vl_vit"
    needs = "views whose sides are multiples of 28 (qwen_native, or tiles of 28k px)"
    UNIT = 28  # patch 14 x spatial merge 2
    no_reduction = "the merger runs inside the ViT, so no patch features reach a reducer; use reduce=none"

    @classmethod
    def tokens_per_view(cls, layout: Layout) -> int:
        w, h = layout.view_wh
        return (w // cls.UNIT) * (h // cls.UNIT)

    @classmethod
    def check(cls, layout: Layout) -> None:
        w, h = layout.view_wh
        if w % cls.UNIT or h % cls.UNIT:
            raise LayoutError(
                f"connector {cls.name!r} needs {cls.needs}; strategy {layout.strategy!r} makes {w}x{h} views"
            )

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * cls.tokens_per_view(layout)

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return in_dim  # the merger (in the backbone) already projected to the LM width

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        return features[: layout.n_views].reshape(-1, features.shape[-1])
