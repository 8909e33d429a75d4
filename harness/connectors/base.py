"""Connectors: one image's backbone patch features -> the LLM-facing token sequence.

A connector is separate from its backbone so that any backbone can take any connector whose
layout needs are met (e.g. CLIP + `llava_next`). Each connector knows, from a Layout alone,
whether it can arrange that image (`check`) and how many tokens it will produce
(`num_tokens`), so counts cost no model and no pixels.

Input to `forward`: `[executed_views, g*g, C]` patch features (CLS dropped) in the
strategy's view order; padding crops (after the content views) are ignored.

A connector also declares whether a token reduction may run before it (`no_reduction`), and if
so which grid the reducer sees (`reduction_grid`), how a view's features are arranged for it
(`arrange_reduced`) and how reduced tokens are projected (`project_reduced`): the pre-load
checks and the forward read the same declarations (docs/token_reduction.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from harness.reduce.base import Reducer, ViewFeatures
from harness.registry import Registry
from harness.types import Layout


class LayoutError(ValueError):
    """A layout that a connector cannot arrange (e.g. phi3_hd without a global view)."""


class Connector(nn.Module):
    name: ClassVar[str]
    needs: ClassVar[str] = "any strategy"
    # Set for a connector whose work runs inside one backbone (e.g. Qwen2.5-VL's merger):
    # only that encoder may name it.
    owner: ClassVar[str | None] = None
    # Why reduced tokens cannot feed this connector (None: they can, arranged as below). A new
    # connector refuses until it says how.
    no_reduction: ClassVar[str | None] = (
        "it declares no rule for reduced tokens (Connector.no_reduction); use reduce=none"
    )

    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.grid_side = in_dim, out_dim, grid_side

    @classmethod
    def check(cls, layout: Layout) -> None:
        """Raise LayoutError when this connector cannot arrange `layout`."""

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        raise NotImplementedError

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return out_dim

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        raise NotImplementedError

    # --- token reduction before this connector ----------------------------------------------
    @classmethod
    def reduction_grid(cls, grid_side: int) -> tuple[tuple[int, int], bool]:
        """The patch grid (rows, cols) a reducer sees per view, and whether a CLS is in the stream."""
        return (grid_side, grid_side), True

    @classmethod
    def check_reduction(cls, reducer: Reducer, grid_side: int) -> None:
        """Raise ValueError (one line, the reason) when `reducer` cannot feed this connector
        (`none` feeds every connector: it is no reduction)."""
        if reducer.name == "none":
            return
        if cls.no_reduction is not None:
            raise ValueError(f"connector {cls.name!r} cannot take reduced tokens: {cls.no_reduction}")
        reducer.check(*cls.reduction_grid(grid_side))

    @classmethod
    def reduced_tokens(cls, reducer: Reducer, layout: Layout, grid_side: int) -> int | None:
        """Visual tokens of one image after reduction; None when the method is adaptive."""
        n = reducer.count(*cls.reduction_grid(grid_side))
        return None if n is None else layout.n_views * n

    @classmethod
    def reduced_range(cls, reducer: Reducer, layout: Layout, grid_side: int) -> tuple[int, int]:
        """Least and most visual tokens of one image after reduction."""
        lo, hi = reducer.count_range(*cls.reduction_grid(grid_side))
        return layout.n_views * lo, layout.n_views * hi

    def arrange_reduced(self, features: torch.Tensor, scores: dict[str, torch.Tensor], layout: Layout) -> ViewFeatures:
        """What the reducer sees of one image: its content views' `features` `[executed_views, 1+P, C]`
        (CLS first) and `scores` `[executed_views, P(, d)]` (padding crops dropped, as `forward`
        drops them). By default each view's g x g patch grid with its CLS."""
        n = layout.n_views
        feats = features[:n]
        return ViewFeatures(patches=feats[:, 1:], grid=(self.grid_side, self.grid_side), cls=feats[:, 0],
                            **{k: v[:n] for k, v in scores.items()})

    def project_reduced(self, tokens: torch.Tensor) -> torch.Tensor:
        """Reduced tokens `[T, c]` -> LLM-facing `[T, D]`, without any grid arrangement (default: as is)."""
        return tokens


def require_global_first(name: str, layout: Layout, strategies: str) -> None:
    if not layout.has_global or layout.global_position != "first":
        raise LayoutError(
            f"connector {name!r} needs a layout with a global/base view first (strategy {strategies}); "
            f"strategy {layout.strategy!r} gives has_global={layout.has_global}, "
            f"global_position={layout.global_position!r}"
        )
    if layout.n_views != 1 + layout.n_tiles:
        raise LayoutError(
            f"connector {name!r}: layout of {layout.strategy!r} has {layout.n_views} content views, "
            f"expected 1 + {layout.n_tiles} tiles"
        )


CONNECTORS: Registry[type[Connector]] = Registry("connector", "harness.connectors")


def connector_class(name: str) -> type[Connector]:
    """The registered connector class; an unknown name fails naming the valid ones."""
    return CONNECTORS.get(name)


def build_connector(name: str, *, in_dim: int, out_dim: int, grid_side: int, **params: Any) -> Connector:
    return connector_class(name)(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side, **params)
