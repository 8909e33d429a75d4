"""`reduce=visionzip reduce.dominant=D reduce.contextual=C`: VisionZip (Yang et al., CVPR 2025),
as `CLIPVisionTower_VisionZip.forward` of dvlab-research/VisionZip (docs/token_reduction.md).

Dominant: the CLS token plus the D - 1 patches of highest CLS attention (softmax per head,
summed over heads, of the layer producing the features), in their original order.
Contextual: of the R remaining patches, C targets evenly spaced by max(1, R // C); every other
remaining patch joins the target whose head-averaged key is most cosine-similar; a contextual
token is its target plus the mean of the patches it absorbed. D + C tokens per view. Without a
CLS in the token stream (merged grids) the D dominant tokens are all patches.
"""

from __future__ import annotations

import torch

from harness.bounds import at_least
from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures


@REDUCERS.register("visionzip")
class VisionZip(Reducer):
    needs = ("cls_attn", "keys")

    def __init__(self, *, dominant: int = 54, contextual: int = 10) -> None:
        self.dominant = at_least("reduce.dominant", dominant, 1)
        self.contextual = at_least("reduce.contextual", contextual, 0)

    def params(self) -> dict[str, int]:
        return {"dominant": self.dominant, "contextual": self.contextual}

    def _dominant_patches(self, has_cls: bool) -> int:
        return self.dominant - 1 if has_cls else self.dominant

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:
        p = grid[0] * grid[1]
        top = p + 1 if has_cls else p
        if self.dominant > top:
            raise ValueError(f"reduce.dominant must be in 1..{top} for a {grid[0]}x{grid[1]} grid"
                             f"{' plus CLS' if has_cls else ''}, got {self.dominant}")
        rest = p - self._dominant_patches(has_cls)
        if self.contextual > rest:
            raise ValueError(f"reduce.contextual must be in 0..{rest} (patches left after the dominant ones), "
                             f"got {self.contextual}")

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        return self.dominant + self.contextual

    def dominant_indices(self, cls_attn: torch.Tensor, has_cls: bool) -> torch.Tensor:
        """`[V, D or D-1]` patch indices of the dominant patches, in score order."""
        return cls_attn.topk(self._dominant_patches(has_cls), dim=1).indices

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        feats, keys = x.patches, x.need("keys")
        v, p, d = feats.shape
        n_dom = self._dominant_patches(x.cls is not None)
        top = self.dominant_indices(x.need("cls_attn"), x.cls is not None)
        rest = torch.ones(v, p, dtype=torch.bool, device=feats.device).scatter_(1, top, False)
        dominant = feats[~rest].view(v, n_dom, d)  # boolean indexing keeps the original order
        if x.cls is not None:
            dominant = torch.cat([x.cls[:, None], dominant], dim=1)
        if self.contextual == 0:
            return list(dominant.unbind(0))
        r = p - n_dom
        hidden = feats[rest].view(v, r, d)
        metric = keys[rest].view(v, r, keys.shape[-1])
        metric = metric / metric.norm(dim=-1, keepdim=True)
        step = max(1, r // self.contextual)
        targets = torch.arange(0, r, step, device=feats.device)[: self.contextual]
        is_target = torch.zeros(r, dtype=torch.bool, device=feats.device)
        is_target[targets] = True
        similarity = metric[:, ~is_target] @ metric[:, targets].transpose(1, 2)
        assign = torch.zeros(v, r - len(targets), len(targets), dtype=feats.dtype, device=feats.device)
        assign.scatter_(2, similarity.argmax(dim=2, keepdim=True), 1)
        counts = assign.sum(dim=1).clamp(min=1).unsqueeze(-1)
        contextual = hidden[:, targets] + assign.transpose(1, 2) @ hidden[:, ~is_target] / counts
        return list(torch.cat([dominant, contextual], dim=1).unbind(0))
