"""`flat`: patch tokens of the content views, concatenated in view order."""

from __future__ import annotations

import torch

from harness.connectors.base import CONNECTORS, Connector
from harness.types import Layout


@CONNECTORS.register("flat")
class Flat(Connector):
    """Per-view patch tokens concatenated in view order; no merge, no projection (D = C).
    Reduced: each content view's reduced tokens, concatenated in view order."""

    no_reduction = None

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * grid_side**2

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return in_dim

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        return features[: layout.n_views].reshape(-1, features.shape[-1])
