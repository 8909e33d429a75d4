"""One image through a reduction and its connector: the connector arranges the views for the
reducer (`Connector.arrange_reduced`) and projects what it keeps (`Connector.project_reduced`);
which connectors take reduced tokens, and on which grid, they declare themselves
(`Connector.no_reduction`, `reduction_grid`; docs/token_reduction.md, "Connectors").
`reduce=none` never comes here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.connectors import Connector
from harness.reduce.base import Reducer
from harness.types import Layout


@dataclass
class Reduced:
    """One image after reduction: LLM-facing `tokens` `[T, D]`, `pooled` (mean of the reduced
    tokens in backbone width, before the connector) and tokens per content view."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    view_counts: list[int]


def pooled_mean(tokens: torch.Tensor, width: int) -> torch.Tensor:
    """Mean of reduced tokens in backbone width (a merged 4C token counts as its 4 patch vectors)."""
    return tokens.float().reshape(-1, width).mean(dim=0)


def reduce_views(
    reducer: Reducer, connector: Connector, features: torch.Tensor, scores: dict[str, torch.Tensor], layout: Layout,
) -> list[torch.Tensor]:
    """What the reducer keeps of one image's features `[executed_views, 1+P, C]` (CLS first), per
    view as the connector arranged them, in backbone width (the connector projects them next)."""
    return reducer.apply(connector.arrange_reduced(features, scores, layout))


def reduce_image(
    reducer: Reducer, connector: Connector, features: torch.Tensor, scores: dict[str, torch.Tensor], layout: Layout,
) -> Reduced:
    """Reduce one image's features and connect them (`Encoder.encode` does the same two steps,
    timing each)."""
    views = reduce_views(reducer, connector, features, scores, layout)
    merged = torch.cat(views)
    return Reduced(tokens=connector.project_reduced(merged), pooled=pooled_mean(merged, features.shape[-1]),
                   view_counts=[int(v.shape[0]) for v in views])
