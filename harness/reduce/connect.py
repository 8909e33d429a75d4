"""Per-connector rules for reduced tokens (docs/token_reduction.md, "Connectors").

`flat` and `llava_next` reduce each content view's g x g patch grid (CLS available) and
concatenate in view order (`llava_next`: projected by its MLP, without unpad or newlines);
`internvl` reduces the pixel-shuffled g/2 x g/2 grid (no CLS, scores pooled over each 2x2
block) before `mlp1`; `phi3_hd` is refused. `reduce=none` never comes here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.reduce.base import Reducer, ViewFeatures
from harness.types import Layout

RULES = ("flat", "llava_next", "internvl")
PHI3_REASON = (
    "connector 'phi3_hd' cannot take reduced tokens: its HD transform puts a sub_GN after every row "
    "of the 2x2-merged grid of the sub-image canvas and of the global view, and a reduced set has no rows; "
    "use reduce=none, or encoder.connector=flat"
)


def token_grid(connector: str, grid_side: int) -> tuple[tuple[int, int], bool]:
    """The grid the reducer sees per view, and whether a CLS token is in the stream."""
    if connector == "internvl":
        return (grid_side // 2, grid_side // 2), False
    return (grid_side, grid_side), True


def check_pairing(reducer: Reducer, connector: str, grid_side: int) -> None:
    """Raise ValueError (one line, the reason) when `reducer` cannot feed `connector`."""
    if reducer.name == "none":
        return
    if connector == "phi3_hd":
        raise ValueError(PHI3_REASON)
    if connector not in RULES:
        raise ValueError(f"reduce={reducer.name} has no rule for connector {connector!r}; rules exist for "
                         f"{', '.join(RULES)}")
    reducer.check(*token_grid(connector, grid_side))


def count_tokens(reducer: Reducer, connector: str, layout: Layout, grid_side: int) -> int | None:
    """Visual tokens of one image after reduction; None when the method is adaptive."""
    n = reducer.count(*token_grid(connector, grid_side))
    return None if n is None else layout.n_views * n


def token_bounds(reducer: Reducer, connector: str, layout: Layout, grid_side: int) -> tuple[int, int]:
    lo, hi = reducer.bounds(*token_grid(connector, grid_side))
    return layout.n_views * lo, layout.n_views * hi


def _shuffle(x: torch.Tensor, g: int) -> torch.Tensor:
    """`[V, g*g, c]` -> `[V, (g/2)^2, 4c]` with InternVL's pixel shuffle (as its connector)."""
    from harness.connectors.internvl import pixel_shuffle

    v, _, c = x.shape
    return pixel_shuffle(x.reshape(v, g, g, c)).reshape(v, -1, 4 * c)


@dataclass
class Reduced:
    """One image after reduction: LLM-facing `tokens` `[T, D]`, `pooled` (mean of the reduced
    tokens in backbone width, before the connector) and tokens per content view."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    view_counts: list[int]


def view_features(connector: nn.Module, features: torch.Tensor, scores: dict[str, torch.Tensor],
                  layout: Layout) -> ViewFeatures:
    """What the reducer sees for one image: its content views' `features` `[executed_views, 1+P, C]`
    (CLS first) and `scores` `[executed_views, P(, d)]`, arranged by the connector's rule
    (padding crops dropped, as the connectors drop them)."""
    name, n, g = connector.name, layout.n_views, connector.grid_side
    feats = features[:n]
    s = {k: v[:n] for k, v in scores.items()}
    if name == "internvl":
        for key in ("cls_attn", "pm_attn"):
            if key in s:
                s[key] = _shuffle(s[key].unsqueeze(-1), g).sum(-1)
        for key in ("keys", "pm_keys"):
            if key in s:
                s[key] = _shuffle(s[key], g)
        return ViewFeatures(patches=_shuffle(feats[:, 1:], g), grid=(g // 2, g // 2), cls=None, **s)
    if name in ("flat", "llava_next"):
        return ViewFeatures(patches=feats[:, 1:], grid=(g, g), cls=feats[:, 0], **s)
    raise ValueError(PHI3_REASON if name == "phi3_hd" else f"no reduction rule for connector {name!r}")


def project(connector: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The connector's projection of reduced tokens `[T, c]` (flat: none; llava_next: its MLP;
    internvl: `mlp1`), without any grid arrangement."""
    if connector.name == "flat":
        return tokens
    if connector.name == "llava_next":
        return connector.linear_2(connector.act(connector.linear_1(tokens)))
    return connector.linear_2(connector.act(connector.linear_1(connector.layer_norm(tokens))))


def pooled_mean(tokens: torch.Tensor, width: int) -> torch.Tensor:
    """Mean of reduced tokens in backbone width (a merged 4C token counts as its 4 patch vectors)."""
    return tokens.float().reshape(-1, width).mean(dim=0)


def reduce_image(
    reducer: Reducer, connector: nn.Module, features: torch.Tensor, scores: dict[str, torch.Tensor], layout: Layout,
) -> Reduced:
    """Reduce one image's features and connect them (see `view_features`)."""
    views = reducer.apply(view_features(connector, features, scores, layout))
    merged = torch.cat(views)
    return Reduced(tokens=project(connector, merged), pooled=pooled_mean(merged, features.shape[-1]),
                   view_counts=[int(v.shape[0]) for v in views])
