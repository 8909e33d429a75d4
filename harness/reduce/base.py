"""What every token-reduction method is: per view, patch features (+ scores) -> fewer tokens.

A reducer sees one batch of views of the same patch grid (`ViewFeatures`) and returns one
token sequence per view. Its count is analytic from the grid alone (`count`), except for
data-dependent methods (adaptive PruMerge), which give `None` and `count_range`. Facts and sources:
docs/token_reduction.md.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from harness.bounds import at_least

# Scores a method may ask the encoder for (see harness/reduce/scores.py):
#   "cls_attn": CLS-row attention of the layer producing the features, softmax per head,
#               summed over heads (VisionZip, cls_topk);
#   "keys":     that layer's keys averaged over heads (VisionZip's merge metric);
#   "pm_attn", "pm_keys": PruMerge's one-head full-width CLS attention and keys of the
#               layer consuming the features.
SCORES = ("cls_attn", "keys", "pm_attn", "pm_keys")


@dataclass
class ViewFeatures:
    """Features of `V` views that share one `grid` (rows, cols) of patches.

    `patches` `[V, P, D]` row-major; `cls` `[V, D]` or None (connectors that drop CLS, or
    merged grids); score tensors `[V, P]` / `[V, P, d]` aligned with `patches`, None when not
    requested.
    """

    patches: torch.Tensor
    grid: tuple[int, int]
    cls: torch.Tensor | None = None
    cls_attn: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    pm_attn: torch.Tensor | None = None
    pm_keys: torch.Tensor | None = None

    def need(self, name: str) -> torch.Tensor:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this reduction needs the {name!r} scores, which were not computed")
        return value


class Reducer(ABC):
    """Base class: keyword parameters of `__init__` are the config keys (`reduce.<key>`)."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    keeps_grid: ClassVar[bool] = False  # output is again a full rows x cols grid (pool, none)

    def params(self) -> dict[str, Any]:
        """What identifies this reduction (hashing, records)."""
        return {}

    def identity(self) -> dict[str, Any]:
        """Record columns: `reduce`, `reduce_params` (JSON) and one `rd_<key>` per parameter."""
        params = self.params()
        return {"reduce": self.name, "reduce_params": json.dumps(params, sort_keys=True),
                **{f"rd_{k}": v for k, v in params.items()}}

    @property
    def adaptive(self) -> bool:
        """True when the count depends on the pixels (then `count` is None)."""
        return False

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError (one line, the valid range) when the method cannot reduce this grid."""

    @abstractmethod
    def count(self, grid: tuple[int, int], has_cls: bool) -> int | None:
        """Tokens per view for a `grid` of patches (and a CLS when `has_cls`); None if adaptive."""

    def count_range(self, grid: tuple[int, int], has_cls: bool) -> tuple[int, int]:
        """Least and most tokens per view (equal for analytic methods)."""
        n = self.count(grid, has_cls)
        assert n is not None
        return n, n

    def out_grid(self, grid: tuple[int, int]) -> tuple[int, int] | None:
        """The output grid when `keeps_grid`, else None."""
        return None

    @abstractmethod
    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        """One `[n_v, D]` token sequence per view."""


class KeepK(Reducer):
    """A method that keeps a fixed `reduce.keep` patches per view (`cls_topk`, `uniform`)."""

    def __init__(self, *, keep: int = 64) -> None:
        self.keep = at_least("reduce.keep", keep, 1)

    def params(self) -> dict[str, int]:
        return {"keep": self.keep}

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:
        if self.keep > grid[0] * grid[1]:
            raise ValueError(f"reduce.keep must be in 1..{grid[0] * grid[1]} for a {grid[0]}x{grid[1]} grid, "
                             f"got {self.keep}")

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        return self.keep
