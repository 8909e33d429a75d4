"""`reduce=prumerge reduce.variant=prumerge|prumerge_plus reduce.adaptive=true|false
reduce.ratio=0.125`: LLaVA-PruMerge (Shang et al.), as `token_prune_merge_advanced(_plus)` of
42Shawn/LLaVA-PruMerge `llava/model/multimodal_encoder/clip_encoder.py` (docs/token_reduction.md).

Scores: one-head attention of the CLS query over all keys at full width,
softmax(q_cls . k / sqrt(C)), of the layer that consumes the features (its q/k projections).
Kept: the int(P * r) patches of highest score, in score order, where r is the share of IQR
outliers (> Q3 + 1.5 IQR) among the P scores (`adaptive`, per view) or `ratio`. `plus` adds
spatially uniform patches. Each kept token adds the score-weighted sum of its 32 most
key-similar other tokens (kept or not); one extra token, the score-weighted sum of the pruned
patches, comes last.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.reduce import REDUCERS
from harness.reduce.base import Reducer, ViewFeatures

VARIANTS = ("prumerge", "prumerge_plus")
NEIGHBOURS = 32  # the reference's topk k of the merge


def outlier_ratio(attn: torch.Tensor) -> float:
    """Share of values above Q3 + 1.5 IQR (numpy percentiles, linear, as the reference)."""
    values = attn.to(dtype=torch.float32).cpu().numpy().flatten()
    q1, q3 = np.percentile(values, 25), np.percentile(values, 75)
    return len(np.where(values > q3 + 1.5 * (q3 - q1))[0]) / len(values)


def max_outliers(n: int) -> int:
    """Most values of n that can lie strictly above the 75th percentile (linear interpolation)."""
    return n - 1 - int(np.floor(0.75 * (n - 1)))


def complement(idx: torch.Tensor, n: int) -> torch.Tensor:
    """The reference's `complement_idx` for one view: sort arange(n) with idx's entries zeroed,
    drop the first len(idx). With duplicate indices (plus, fixed ratio) it drops as many real
    indices as there are duplicates, as the reference does."""
    masked = torch.arange(n, device=idx.device).scatter(0, idx, 0)
    return masked.sort().values[len(idx):]


@REDUCERS.register("prumerge")
class PruMerge(Reducer):
    needs = ("pm_attn", "pm_keys")

    def __init__(self, *, variant: str = "prumerge", adaptive: bool = True, ratio: float = 0.125) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"reduce.variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
        if not isinstance(adaptive, bool):
            raise ValueError(f"reduce.adaptive must be true or false, got {adaptive!r}")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < float(ratio) <= 0.5:
            raise ValueError(f"reduce.ratio must be in (0, 0.5], got {ratio!r}")
        self.variant, self._adaptive, self.ratio = variant, adaptive, float(ratio)

    def params(self) -> dict[str, object]:
        return {"variant": self.variant, "adaptive": self._adaptive, "ratio": self.ratio}

    @property
    def adaptive(self) -> bool:
        return self._adaptive

    def check(self, grid: tuple[int, int], has_cls: bool) -> None:
        p = grid[0] * grid[1]
        if p < 2:
            raise ValueError(f"prumerge needs at least 2 patches per view, grid is {grid[0]}x{grid[1]}")
        if not self._adaptive and int(p * self.ratio) < 1:
            raise ValueError(f"reduce.ratio={self.ratio} keeps no patch of {p}; use a ratio >= {1 / p:.4g}")

    @staticmethod
    def _spatial(p: int, ratio: float) -> torch.Tensor:
        """Plus, fixed ratio: arange(int(step / 2), P - 1, step) with step = int(1 / ratio)."""
        step = int(1 / ratio)
        return torch.arange(int(step / 2), p - 1, step)

    def count(self, grid: tuple[int, int], has_cls: bool) -> int | None:
        if self._adaptive:
            return None
        p = grid[0] * grid[1]
        k = int(p * self.ratio)
        extra = len(self._spatial(p, self.ratio)) if self.variant == "prumerge_plus" else 0
        return k + extra + 1

    def count_range(self, grid: tuple[int, int], has_cls: bool) -> tuple[int, int]:
        n = self.count(grid, has_cls)
        if n is not None:
            return n, n
        p = grid[0] * grid[1]
        if self.variant == "prumerge":
            return 1, max_outliers(p) + 1
        return 1, p + 1

    def kept_indices(self, attn: torch.Tensor) -> torch.Tensor:
        """Indices (into the view's patches) of the kept tokens, in output order."""
        p = attn.shape[0]
        ratio = outlier_ratio(attn) if self._adaptive else self.ratio
        idx = attn.topk(int(p * ratio)).indices
        if self.variant == "prumerge":
            return idx
        if not self._adaptive:
            return torch.cat([idx, self._spatial(p, ratio).to(idx.device)])
        # adaptive plus: arange(0, P-1, int(int(1/r)/3)) minus the kept ones; the reference
        # divides by zero when no score is an outlier, we then use `ratio` for the step.
        step = max(1, int(int(1 / (ratio if ratio > 0 else self.ratio)) / 3))
        seq = torch.arange(0, p - 1, step, device=idx.device)
        return torch.cat([idx, seq[~torch.isin(seq, idx)]])

    def merge(self, feats: torch.Tensor, attn: torch.Tensor, keys: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One view: kept tokens + their score-weighted 32 nearest (by key cosine), extra token last."""
        p = feats.shape[0]
        compl = complement(idx, p)
        pool = torch.cat([idx, compl])
        keys_n = F.normalize(keys, p=2, dim=-1)
        kept_n, pool_n = keys_n[idx], keys_n[pool]
        sim = kept_n @ pool_n.T  # [k, k + m]; position i of the pool is kept token i itself
        k = len(idx)
        sim[torch.arange(k), torch.arange(k)] = float("-inf")
        nb = min(NEIGHBOURS, len(pool) - 1)
        near = sim.topk(nb, dim=1).indices
        weighted = (feats[pool][near] * attn[pool][near].unsqueeze(-1)).sum(dim=1)
        updated = feats[idx] + weighted
        extra = (feats[compl] * attn[compl].unsqueeze(-1)).sum(dim=0, keepdim=True)
        return torch.cat([updated, extra])

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        attn, keys = x.need("pm_attn"), x.need("pm_keys")
        return [self.merge(f, a, kk, self.kept_indices(a)) for f, a, kk in zip(x.patches, attn, keys, strict=True)]
