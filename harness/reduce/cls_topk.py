"""`reduce=cls_topk reduce.keep=K`: the K patches with the highest CLS attention of the
feature layer (softmax per head, summed over heads), kept in their original order."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures, as_int


@REDUCERS.register("cls_topk")
class ClsTopK(Reducer):
    needs = ("cls_attn",)

    def __init__(self, *, keep: int = 64) -> None:
        self.keep = as_int(keep, "reduce.keep", 1)

    def params(self) -> dict[str, int]:
        return {"keep": self.keep}

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:
        if self.keep > grid[0] * grid[1]:
            raise ValueError(f"reduce.keep must be in 1..{grid[0] * grid[1]} for a {grid[0]}x{grid[1]} grid, "
                             f"got {self.keep}")

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        return self.keep

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        idx = x.need("cls_attn").topk(self.keep, dim=1).indices.sort(dim=1).values
        kept = x.patches.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.patches.shape[-1]))
        return list(kept.unbind(0))
