"""`reduce=uniform reduce.keep=K`: K evenly spaced patches of the row-major grid, the i-th at
index floor((2i + 1) P / 2K) (centred in its stretch of P/K patches)."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.reduce.base import KeepK, ViewFeatures


def uniform_indices(n: int, keep: int) -> torch.Tensor:
    return (2 * torch.arange(keep) + 1) * n // (2 * keep)


@REDUCERS.register("uniform")
class Uniform(KeepK):
    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        idx = uniform_indices(x.patches.shape[1], self.keep).to(x.patches.device)
        return list(x.patches[:, idx].unbind(0))
