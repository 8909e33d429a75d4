"""`reduce=pool reduce.stride=s`: 2-D average pooling of the patch grid, kernel = stride = s;
a grid side not divisible by s ends with a smaller window averaged over its own patches
(ceil(g/s) outputs per side)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.bounds import at_least
from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures


@REDUCERS.register("pool")
class Pool(Reducer):
    keeps_grid = True

    def __init__(self, *, stride: int = 2) -> None:
        self.stride = at_least("reduce.stride", stride, 1)

    def params(self) -> dict[str, int]:
        return {"stride": self.stride}

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:
        if self.stride > min(grid):
            raise ValueError(f"reduce.stride must be in 1..{min(grid)} for a {grid[0]}x{grid[1]} grid, "
                             f"got {self.stride}")

    def out_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        return -(-grid[0] // self.stride), -(-grid[1] // self.stride)

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        rows, cols = self.out_grid(grid)
        return rows * cols

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        v, _, d = x.patches.shape
        rows, cols = x.grid
        img = x.patches.transpose(1, 2).reshape(v, d, rows, cols)
        out = F.avg_pool2d(img, self.stride, self.stride, ceil_mode=True)
        return list(out.flatten(2).transpose(1, 2).unbind(0))
