"""LLaVA-NeXT anyres: best pinpoint resolution, aspect-preserving resize, black padding, tiles.

As transformers' LlavaNextImageProcessorPil: `select_best_resolution` keeps the pinpoint with
the largest effective resolution (then the least waste; the first wins ties), the image is
resized bicubic to fit (`get_patch_output_size`: ceil, capped at the canvas), padded with 0
centred (odd pixel bottom/right), cut row-major into S x S tiles, and preceded by the base
view, a squash of the original to S x S. `pinpoint_order` says how each pinpoint pair is
read: "hw" (transformers, vLLM) or "wh" (original haotian-liu/LLaVA); the default set is
symmetric, so only ties differ (e.g. any image up to 336x336: 1x2 in hw, 2x1 in wh).
Pinpoints are given for 336 px tiles (as in the checkpoints) and must be multiples of 336;
with another tile_size S each becomes (pinpoint / 336) * S.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from harness.bounds import bounded_int
from harness.preprocess import STRATEGIES
from harness.preprocess.base import BICUBIC, MAX_TILES, Strategy, check_image_size
from harness.types import Layout

PINPOINT_UNIT = 336
DEFAULT_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
PINPOINT_ORDERS = ("hw", "wh")


def select_best_resolution(width: int, height: int, candidates: list[tuple[int, int]]) -> tuple[int, int]:
    """(canvas_w, canvas_h) among (w, h) candidates, as transformers' `select_best_resolution`
    (written without min() calls: plan() runs it for every size of a token sweep)."""
    best, max_effective, min_wasted, area = candidates[0], 0, float("inf"), width * height
    for cw, ch in candidates:
        scale_w, scale_h = cw / width, ch / height
        scale = scale_h if scale_h < scale_w else scale_w
        effective = int(width * scale) * int(height * scale)
        if effective > area:
            effective = area
        wasted = cw * ch - effective
        if effective > max_effective or (effective == max_effective and wasted < min_wasted):
            best, max_effective, min_wasted = (cw, ch), effective, wasted
    return best


def fit_size(width: int, height: int, canvas_w: int, canvas_h: int) -> tuple[int, int]:
    """(w, h) of the aspect-preserving resize into the canvas (`get_patch_output_size`)."""
    scale_w, scale_h = canvas_w / width, canvas_h / height
    if scale_w < scale_h:
        new_h = math.ceil(height * scale_w)
        return canvas_w, new_h if new_h < canvas_h else canvas_h
    new_w = math.ceil(width * scale_h)
    return new_w if new_w < canvas_w else canvas_w, canvas_h


@STRATEGIES.register("llava_anyres")
class LlavaAnyres(Strategy):
    pinpoint_unit: ClassVar[int] = PINPOINT_UNIT  # the tile size the pinpoints are given for
    default_pinpoints: ClassVar[tuple[tuple[int, int], ...]] = DEFAULT_PINPOINTS

    def __init__(
        self, *, grid_pinpoints: list[list[int]] | None = None, pinpoint_order: str = "hw", **common
    ) -> None:
        super().__init__(**common)
        if pinpoint_order not in PINPOINT_ORDERS:
            raise ValueError(f"unknown pinpoint_order {pinpoint_order!r}; valid: {', '.join(PINPOINT_ORDERS)}")
        given = self.default_pinpoints if grid_pinpoints is None else grid_pinpoints
        base = self.pinpoint_unit
        try:
            pinpoints = [tuple(bounded_int("preprocess.grid_pinpoints", v, 1, MAX_TILES * base) for v in p)
                         for p in given]
        except (TypeError, ValueError):  # 1.5, true, text: refused, never truncated
            pinpoints = []  # not a list of pairs of numbers: the message below says what is
        if (not 1 <= len(pinpoints) <= MAX_TILES
                or any(len(p) != 2 or min(p) <= 0 or p[0] % base or p[1] % base
                       or p[0] * p[1] > MAX_TILES * base**2 for p in pinpoints)):
            raise ValueError(
                f"grid_pinpoints must be 1 to {MAX_TILES} pairs of positive multiples of {base}, "
                f"each at most {MAX_TILES} tiles, got {grid_pinpoints}"
            )
        self.grid_pinpoints, self.pinpoint_order = [list(p) for p in pinpoints], pinpoint_order
        unit = self.tile_size / base
        # Candidate canvases as (w, h) in pixels of this tile size.
        self._canvases = [
            (int(b * unit), int(a * unit)) if pinpoint_order == "hw" else (int(a * unit), int(b * unit))
            for a, b in pinpoints
        ]

    def params(self) -> dict:
        return {**super().params(), "grid_pinpoints": self.grid_pinpoints, "pinpoint_order": self.pinpoint_order}

    def plan(self, width: int, height: int) -> Layout:
        if width <= 0 or height <= 0:
            check_image_size(width, height)
        s = self.tile_size
        canvas_w, canvas_h = select_best_resolution(width, height, self._canvases)
        new_w, new_h = fit_size(width, height, canvas_w, canvas_h)
        left, top = (canvas_w - new_w) // 2, (canvas_h - new_h) // 2
        rows, cols = canvas_h // s, canvas_w // s
        return self._layout(
            width, height, grid=(rows, cols), resized_size=(new_w, new_h), canvas_size=(canvas_w, canvas_h),
            content_box=(left, top, left + new_w, top + new_h), has_global=True, global_position="first",
            n_views=1 + rows * cols, executed_views=1 + rows * cols,
        )

    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        s = self.tile_size
        rows, cols = layout.grid
        (canvas_w, canvas_h), (left, top, right, bottom) = layout.canvas_size, layout.content_box
        out = self.new_views(layout)
        self.normalize_tiles(self.ops.resize(pixels, (s, s), BICUBIC), 1, 1, out[:1])
        if (right - left, bottom - top) == (canvas_w, canvas_h):
            canvas = self.ops.resize(pixels, layout.resized_size, BICUBIC)
        else:  # black padding; the resize is written straight into its place on the canvas
            canvas = self.ops.canvas(canvas_h, canvas_w, 0, inside=(left, top, right, bottom))
            self.ops.resize(pixels, layout.resized_size, BICUBIC, out=canvas[top:bottom, left:right])
        self.normalize_tiles(canvas, rows, cols, out[1:])
        return out
