"""`reduce=none`: every patch token, unchanged (today's records)."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures


@REDUCERS.register("none")
class NoReduction(Reducer):
    keeps_grid = True

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        return grid[0] * grid[1]

    def out_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        return grid

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        return list(x.patches.unbind(0))
