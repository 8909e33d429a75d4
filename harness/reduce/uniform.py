"""`reduce=uniform reduce.keep=K`: K evenly spaced patches of the row-major grid, the i-th at
index floor((2i + 1) P / 2K) (centred in its stretch of P/K patches)."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures, as_int


def uniform_indices(n: int, keep: int) -> torch.Tensor:
    return (2 * torch.arange(keep) + 1) * n // (2 * keep)


@REDUCERS.register("uniform")
class Uniform(Reducer):

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
        idx = uniform_indices(x.patches.shape[1], self.keep).to(x.patches.device)
        return list(x.patches[:, idx].unbind(0))
