"""What every preprocessing strategy is: plan geometry from a size, then cut pixels to plan."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from PIL import Image

from harness.bounds import boolean, bounded_int
from harness.pipeline.identity import component_columns
from harness.preprocess.convert import to_rgb
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, normalization_table
from harness.preprocess.ops import build_ops
from harness.types import Layout, Views

# The most tiles one image may be cut into (max_tiles, num_crops, a pinpoint canvas): InternVL
# uses up to 40, Phi-3 16; beyond 64 a plan's candidate search and the crops' memory explode.
MAX_TILES = 64
MAX_TILE_SIZE = 2048

BICUBIC = Image.Resampling.BICUBIC
BILINEAR = Image.Resampling.BILINEAR


class Strategy(ABC):
    """A preprocessing strategy.

    `plan(width, height)` is pure geometry (fast enough for token sweeps over millions of
    sizes); `apply(image)` produces the normalised crops that `plan` promised.
    Subclasses take their parameters as keyword arguments; `tile_size`, `mean` and `std`
    are common to all and default (None) to the reference model's values, which the runner
    replaces with the encoder's when the config leaves them null. `exif_transpose` applies
    the EXIF orientation before anything else (off, as in the references). `backend` and
    `device` say who does the pixel work and where (`harness.preprocess.ops`; the same pixels
    every way, so not part of `params`).
    """

    name: ClassVar[str]
    default_tile_size: ClassVar[int] = 336
    default_mean: ClassVar[tuple[float, float, float]] = OPENAI_CLIP_MEAN
    default_std: ClassVar[tuple[float, float, float]] = OPENAI_CLIP_STD
    # Which reference's float arithmetic the normalisation table reproduces.
    arithmetic: ClassVar[str] = "transformers"
    # True when views have a size of their own (`Layout.view_size`), not the encoder's tile:
    # the encoder's tile size is then not imposed on the strategy.
    variable_size: ClassVar[bool] = False

    def __init__(
        self,
        *,
        tile_size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        exif_transpose: bool = False,
        backend: str = "auto",
        device: str = "cpu",
    ) -> None:
        tile_size = self.default_tile_size if tile_size is None else tile_size
        self.tile_size = bounded_int("preprocess.tile_size", tile_size, 1, MAX_TILE_SIZE)
        self.mean = tuple(float(m) for m in (self.default_mean if mean is None else mean))
        self.std = tuple(float(s) for s in (self.default_std if std is None else std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (R, G, B); got {self.mean} and {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        self.exif_transpose = boolean("preprocess.exif_transpose", exif_transpose)
        self.ops = build_ops(backend, device)
        self.backend, self.device = backend, device
        self._table = normalization_table(self.mean, self.std, self.arithmetic)

    @abstractmethod
    def plan(self, width: int, height: int) -> Layout:
        """The Layout for an image of this size, without touching pixels."""

    @abstractmethod
    def views(self, pixels: Any, layout: Layout) -> torch.Tensor:
        """float32 `[executed_views, 3, h, w]` on `self.ops.device`: the normalised views of
        the image whose pixels (`self.ops.source(rgb)`) are given, in encoder order, as the
        plan says. Pixel work goes through `self.ops`, so every backend gives the same bytes."""

    def params(self) -> dict[str, Any]:
        """The parameters that identify this strategy in records."""
        return {
            "tile_size": self.tile_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "exif_transpose": self.exif_transpose,
        }

    def identity(self) -> dict[str, Any]:
        """Record columns: `strategy`, `strategy_params` and one `pp_<name>` per scalar parameter."""
        return component_columns("strategy", self.name, self.params(), prefix="pp")

    def source(self, image: Image.Image) -> tuple[Layout, Any]:
        """Convert to RGB (see `convert.to_rgb`) and plan: the CPU half of `apply`, which a
        DataLoader worker runs when the views are made on a GPU (`preprocess.device=cuda`).
        Returns the plan and the pixels as `self.ops` holds them."""
        rgb = to_rgb(image, self.exif_transpose)
        return self.plan(*rgb.size), self.ops.source(rgb)

    def apply(self, image: Image.Image) -> Views:
        """Convert to RGB, plan, cut and normalise."""
        layout, pixels = self.source(image)
        return self.finish(layout, pixels)

    def finish(self, layout: Layout, pixels: Any) -> Views:
        """The views of `source`'s pixels (moved to the ops' device), checked against the plan."""
        pixel_values = self.views(self.ops.upload(pixels), layout)
        w, h = layout.view_wh
        if tuple(pixel_values.shape) != (layout.executed_views, 3, h, w):
            raise AssertionError(
                f"{self.name}: produced {tuple(pixel_values.shape)}, plan said {layout.executed_views} crops"
            )
        return Views(pixel_values=pixel_values, layout=layout)

    def normalize_tiles(self, pixels: Any, rows: int, cols: int, out: torch.Tensor) -> None:
        """Cut `pixels` into `rows x cols` tiles of `out`'s size and normalise them into `out`."""
        self.ops.normalize_tiles(pixels, rows, cols, self._table, out)

    def new_views(self, layout: Layout) -> torch.Tensor:
        """Uninitialised float32 views of the plan's size, on the ops' device."""
        w, h = layout.view_wh
        return self.ops.views(layout.executed_views, h, w)

    def _layout(self, width: int, height: int, **geometry: Any) -> Layout:
        return Layout(strategy=self.name, original_size=(width, height), tile_size=self.tile_size, **geometry)


def check_image_size(width: int, height: int) -> None:
    """Plans need a positive size; say so instead of dividing by zero."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
