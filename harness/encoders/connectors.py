"""Connectors: one image's backbone patch features -> the LLM-facing token sequence.

A connector is separate from its backbone so that any backbone can take any connector whose
layout needs are met (e.g. CLIP + `llava_next`). Each connector knows, from a Layout alone,
whether it can arrange that image (`check`) and how many tokens it will produce
(`num_tokens`), so counts cost no model and no pixels.

Input to `forward`: `[executed_views, g*g, C]` patch features (CLS dropped) in the
strategy's view order; padding crops (after the content views) are ignored.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from harness.types import Layout


class LayoutError(ValueError):
    """A layout that a connector cannot arrange (e.g. phi3_hd without a global view)."""


class Connector(nn.Module):
    name: ClassVar[str]
    needs: ClassVar[str] = "any strategy"
    # Set for a connector whose work runs inside one backbone (e.g. Qwen2.5-VL's merger):
    # only that encoder may name it.
    owner: ClassVar[str | None] = None

    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.grid_side = in_dim, out_dim, grid_side

    @classmethod
    def check(cls, layout: Layout) -> None:
        """Raise LayoutError when this connector cannot arrange `layout`."""

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        raise NotImplementedError

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return out_dim

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        raise NotImplementedError


def _require_global_first(name: str, layout: Layout, strategies: str) -> None:
    if not layout.has_global or layout.global_position != "first":
        raise LayoutError(
            f"connector {name!r} needs a layout with a global/base view first (strategy {strategies}); "
            f"strategy {layout.strategy!r} gives has_global={layout.has_global}, "
            f"global_position={layout.global_position!r}"
        )
    if layout.n_views != 1 + layout.n_tiles:
        raise LayoutError(
            f"connector {name!r}: layout of {layout.strategy!r} has {layout.n_views} content views, "
            f"expected 1 + {layout.n_tiles} tiles"
        )


class Flat(Connector):
    """Per-view patch tokens concatenated in view order; no merge, no projection (D = C)."""

    name = "flat"

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * grid_side**2

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return in_dim

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        return features[: layout.n_views].reshape(-1, features.shape[-1])


def merge_2x2(features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Phi-3's `reshape_hd_patches_2x2merge`: `[rows*cols, g*g, C]` crops (row-major) ->
    `[rows*g/2, cols*g/2, 4C]`, each vector the 2x2 patch block concatenated."""
    n, length, c = features.shape
    g = round(length**0.5)
    m = g // 2
    return (
        features.reshape(n, g, g, c)
        .reshape(n, m, 2, m, 2, c)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(n, m * m, 4 * c)
        .reshape(rows, cols, m, m, 4 * c)
        .permute(0, 2, 1, 3, 4)
        .reshape(rows * m, cols * m, 4 * c)
    )


class Phi3HD(Connector):
    """Phi-3-vision's HD embedding (`Phi3HDImageEmbedding.hd_feature_transform`).

    2x2 merge (24x24 -> 12x12 vectors of 4C), a learnable `sub_GN` after every row of the
    sub-image grid and of the global view, one `glb_GN` between them, then the projection.
    `sub_glb` (Phi-3-vision): sub-images, glb_GN, global; `glb_sub`: global, glb_GN, sub-images.
    """

    name = "phi3_hd"
    needs = "phi3_hd"
    ORDERS = ("sub_glb", "glb_sub")
    PROJECTIONS = ("linear", "mlp")

    def __init__(
        self, *, in_dim: int, out_dim: int, grid_side: int, projection: str = "mlp", hd_transform_order: str = "sub_glb"
    ) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        if hd_transform_order not in self.ORDERS:
            raise ValueError(f"hd_transform_order must be one of {', '.join(self.ORDERS)}; got {hd_transform_order!r}")
        if projection not in self.PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(self.PROJECTIONS)}; got {projection!r}")
        if grid_side % 2:
            raise ValueError(f"phi3_hd needs an even patch grid, got {grid_side}")
        self.hd_transform_order = hd_transform_order
        dim = 4 * in_dim
        self.glb_GN = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.sub_GN = nn.Parameter(torch.randn(1, 1, 1, dim) * 0.02)
        if projection == "linear":
            self.img_projection: nn.Module = nn.Linear(dim, out_dim)
        else:
            self.img_projection = nn.Sequential(nn.Linear(dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    @classmethod
    def check(cls, layout: Layout) -> None:
        _require_global_first(cls.name, layout, cls.needs)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        rows, cols = layout.grid
        m = grid_side // 2
        return rows * m * (cols * m + 1) + 1 + m * (m + 1)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """`[H, W, 4C]` -> `[H*(W+1), 4C]`: a sub_GN after each row."""
        h = grid.shape[0]
        sep = self.sub_GN.reshape(1, 1, -1).expand(h, 1, -1).to(grid.dtype)
        return torch.cat([grid, sep], dim=1).reshape(-1, grid.shape[-1])

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        rows, cols = layout.grid
        glb = self._with_newlines(merge_2x2(features[:1], 1, 1))
        sub = self._with_newlines(merge_2x2(features[1 : 1 + rows * cols], rows, cols))
        sep = self.glb_GN.reshape(1, -1).to(features.dtype)
        parts = [sub, sep, glb] if self.hd_transform_order == "sub_glb" else [glb, sep, sub]
        return self.img_projection(torch.cat(parts))


def unpadded_grid(rows: int, cols: int, grid_side: int, width: int, height: int) -> tuple[int, int]:
    """LLaVA-NeXT's unpadded feature grid (rows, cols) for an image of `width x height`, as
    transformers' `unpad_image` computes it (`int(round(x, 7))`)."""
    ch, cw = grid_side * rows, grid_side * cols
    if width / height > cw / ch:
        new_h = int(round(height * (cw / width), 7))
        ch -= 2 * ((ch - new_h) // 2)
    else:
        new_w = int(round(width * (ch / height), 7))
        cw -= 2 * ((cw - new_w) // 2)
    return ch, cw


class LlavaNext(Connector):
    """LLaVA-NeXT: 2-layer MLP projector, base view first, then the tiles' feature grid
    unpadded to the image content and one `image_newline` after each row."""

    name = "llava_next"
    needs = "llava_anyres"

    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)
        self.image_newline = nn.Parameter(torch.randn(out_dim) * out_dim**-0.5)

    @classmethod
    def check(cls, layout: Layout) -> None:
        _require_global_first(cls.name, layout, cls.needs)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        ch, cw = unpadded_grid(*layout.grid, grid_side, *layout.original_size)
        return grid_side**2 + ch * cw + ch

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        rows, cols = layout.grid
        g = self.grid_side
        x = self.linear_2(self.act(self.linear_1(features[: layout.n_views])))
        base, tiles = x[0], x[1:]
        d = x.shape[-1]
        grid = tiles.reshape(rows, cols, g, g, d).permute(4, 0, 2, 1, 3).reshape(d, rows * g, cols * g)
        ch, cw = unpadded_grid(rows, cols, g, *layout.original_size)
        top, left = (rows * g - ch) // 2, (cols * g - cw) // 2
        grid = grid[:, top : top + ch, left : left + cw]
        newline = self.image_newline[:, None, None].expand(d, ch, 1).to(grid.dtype)
        grid = torch.cat([grid, newline], dim=-1).flatten(1, 2).transpose(0, 1)
        return torch.cat([base, grid])


def onevision_grid(ch: int, cw: int, grid_side: int, max_tiles: int) -> tuple[int, int]:
    """LLaVA-OneVision's `anyres_max_N` rule on an unpadded feature grid: when it holds more
    than ~N tiles' patches (ratio sqrt(h*w / (N*g^2)) > 1.1), shrink both sides to
    `int(side // ratio)` (float floor division, as `LlavaOnevisionModel.pack_image_features`)."""
    ratio = math.sqrt(ch * cw / (max_tiles * grid_side**2))
    if ratio > 1.1:
        return int(ch // ratio), int(cw // ratio)
    return ch, cw


class LlavaOnevision(LlavaNext):
    """LLaVA-OneVision (`anyres_max_9`): the LLaVA-NeXT arrangement (projector, base view
    first, unpadded tile grid, one `image_newline` per row) with the tile grid shrunk
    bilinearly (`F.interpolate`, align_corners False) to at most ~9 tiles' worth of patches
    before the newlines are added."""

    name = "llava_onevision"
    needs = "llava_onevision (or llava_anyres)"
    MAX_TILES = 9  # anyres_max_9, the setting of every released OneVision checkpoint

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        ch, cw = unpadded_grid(*layout.grid, grid_side, *layout.original_size)
        h, w = onevision_grid(ch, cw, grid_side, cls.MAX_TILES)
        return grid_side**2 + h * (w + 1)

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        rows, cols = layout.grid
        g = self.grid_side
        x = self.linear_2(self.act(self.linear_1(features[: layout.n_views])))
        base, tiles = x[0], x[1:]
        d = x.shape[-1]
        grid = tiles.reshape(rows, cols, g, g, d).permute(4, 0, 2, 1, 3).reshape(d, rows * g, cols * g)
        ch, cw = unpadded_grid(rows, cols, g, *layout.original_size)
        top, left = (rows * g - ch) // 2, (cols * g - cw) // 2
        grid = grid[:, top : top + ch, left : left + cw]
        h, w = onevision_grid(ch, cw, g, self.MAX_TILES)
        if (h, w) != (ch, cw):
            grid = nn.functional.interpolate(grid[None], [h, w], mode="bilinear")[0]
        newline = self.image_newline[:, None, None].expand(d, h, 1).to(grid.dtype)
        grid = torch.cat([grid, newline], dim=-1).flatten(1, 2).transpose(0, 1)
        return torch.cat([base, grid])


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
    """InternVL's `pixel_shuffle` with ps_version v2: `[N, g, g, C]` -> `[N, g/2, g/2, 4C]`."""
    n, w, h, c = x.shape
    x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    return x.permute(0, 2, 1, 3).contiguous()


class InternVL(Connector):
    """InternVL: pixel shuffle 0.5 per crop (g x g x C -> g/2 x g/2 x 4C), then `mlp1`
    (LayerNorm, Linear, GELU, Linear); tokens of all content crops in view order."""

    name = "internvl"

    def __init__(self, *, in_dim: int, out_dim: int, grid_side: int) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side)
        if grid_side % 2:
            raise ValueError(f"internvl pixel shuffle needs an even patch grid, got {grid_side}")
        self.layer_norm = nn.LayerNorm(4 * in_dim)
        self.linear_1 = nn.Linear(4 * in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * (grid_side // 2) ** 2

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = features[: layout.n_views]
        g = self.grid_side
        x = pixel_shuffle(x.reshape(x.shape[0], g, g, -1)).reshape(x.shape[0], -1, 4 * x.shape[-1])
        x = self.linear_2(self.act(self.linear_1(self.layer_norm(x))))
        return x.reshape(-1, x.shape[-1])


class QwenMerger(Connector):
    """Qwen2.5-VL: the backbone's own `PatchMerger` (2x2 patches -> one LM token, LayerNorm +
    MLP to the LM width) already ran inside the ViT; the tokens of each content view come out
    in the view's row-major merged-grid order, (H/28)*(W/28) per view. This connector keeps the
    content views' tokens (padding crops dropped). See docs/native_resolution.md."""

    name = "qwen_merger"
    owner = "qwen2_5_vl_vit"
    needs = "views whose sides are multiples of 28 (qwen_native, or tiles of 28k px)"
    UNIT = 28  # patch 14 x spatial merge 2

    @classmethod
    def tokens_per_view(cls, layout: Layout) -> int:
        w, h = layout.view_wh
        return (w // cls.UNIT) * (h // cls.UNIT)

    @classmethod
    def check(cls, layout: Layout) -> None:
        w, h = layout.view_wh
        if w % cls.UNIT or h % cls.UNIT:
            raise LayoutError(
                f"connector {cls.name!r} needs {cls.needs}; strategy {layout.strategy!r} makes {w}x{h} views"
            )

    @classmethod
    def num_tokens(cls, layout: Layout, grid_side: int) -> int:
        return layout.n_views * cls.tokens_per_view(layout)

    @classmethod
    def output_dim(cls, in_dim: int, out_dim: int) -> int:
        return in_dim  # the merger (in the backbone) already projected to the LM width

    def forward(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """`features`: this image's merged tokens `[executed_views, tokens_per_view, D]`."""
        return features[: layout.n_views].reshape(-1, features.shape[-1])


CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (Flat, Phi3HD, LlavaNext, InternVL, LlavaOnevision, QwenMerger)
}


def connector_class(name: str) -> type[Connector]:
    if name not in CONNECTORS:
        raise ValueError(f"unknown connector {name!r}; valid choices: {', '.join(CONNECTORS)}")
    return CONNECTORS[name]


def build_connector(name: str, *, in_dim: int, out_dim: int, grid_side: int, **params: Any) -> Connector:
    return connector_class(name)(in_dim=in_dim, out_dim=out_dim, grid_side=grid_side, **params)
