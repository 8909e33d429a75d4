"""`reduce=cls_topk reduce.keep=K`: the K patches with the highest CLS attention of the
feature layer (softmax per head, summed over heads), kept in their original order."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.reduce.base import KeepK, ViewFeatures


@REDUCERS.register("cls_topk")
class ClsTopK(KeepK):
    needs = ("cls_attn",)

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        idx = x.need("cls_attn").topk(self.keep, dim=1).indices.sort(dim=1).values
        kept = x.patches.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.patches.shape[-1]))
        return list(kept.unbind(0))
