"""Connectors: one image's backbone patch features -> the LLM-facing token sequence.

A connector is separate from its backbone so that any backbone can take any connector whose
layout needs are met (e.g. CLIP + `llava_next`). Each connector knows, from a Layout alone,
whether it can arrange that image (`check`) and how many tokens it will produce
(`num_tokens`), so counts cost no model and no pixels.

Input to `forward`: `[executed_views, g*g, C]` patch features (CLS dropped) in the
strategy's view order; padding crops (after the content views) are ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

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
