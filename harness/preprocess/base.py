"""What every preprocessing strategy is: plan geometry from a size, then cut pixels to plan."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from harness.bounds import boolean, bounded_int
from harness.identity import component_columns
from harness.preprocess import resample
from harness.preprocess.convert import to_rgb
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, normalization_table
from harness.types import Layout, Views

# The most tiles one image may be cut into (max_tiles, num_crops, a pinpoint canvas): InternVL
# uses up to 40, Phi-3 16; beyond 64 a plan's candidate search and the crops' memory explode.
MAX_TILES = 64
MAX_TILE_SIZE = 2048

BICUBIC = Image.Resampling.BICUBIC
BILINEAR = Image.Resampling.BILINEAR
# Who computes `Image.resize`'s pixels (identical either way, see docs/resampling.md): Pillow
# itself, or `harness.preprocess.resample` in torch; "auto" = the faster one measured on
# the CPU, Pillow (bench/bench_preprocess.py).
RESAMPLE_BACKENDS = ("auto", "pil", "torch")


def resized_pixels(image: Image.Image, size: tuple[int, int], filter: int, backend: str = "auto") -> np.ndarray:
    """uint8 `[h, w, 3]` of `image.resize(size, filter)` (an RGB image) from the chosen backend;
    the image's own pixels when the size already matches (as PIL, which then returns a copy)."""
    size = (int(size[0]), int(size[1]))
    if image.size == size:
        return np.asarray(image)
    if backend in ("auto", "pil"):
        return np.asarray(image.resize(size, filter))
    if backend != "torch":
        raise ValueError(f"unknown resample backend {backend!r}; valid: {', '.join(RESAMPLE_BACKENDS)}")
    with warnings.catch_warnings():  # PIL's array is read-only; torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        pixels = torch.from_numpy(np.asarray(image))
    return resample.resize(pixels, size, filter).numpy()


class Strategy(ABC):
    """A preprocessing strategy.

    `plan(width, height)` is pure geometry (fast enough for token sweeps over millions of
    sizes); `apply(image)` produces the normalised crops that `plan` promised.
    Subclasses take their parameters as keyword arguments; `tile_size`, `mean` and `std`
    are common to all and default (None) to the reference model's values, which the runner
    replaces with the encoder's when the config leaves them null. `exif_transpose` applies
    the EXIF orientation before anything else (off, as in the references). `backend` says
    who computes the resizes (`RESAMPLE_BACKENDS`; same pixels, so not part of `params`).
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
        if backend not in RESAMPLE_BACKENDS:
            raise ValueError(f"unknown preprocess backend {backend!r}; valid: {', '.join(RESAMPLE_BACKENDS)}")
        self.backend = backend
        self._table = normalization_table(self.mean, self.std, self.arithmetic)
        # The same table for two neighbouring pixels read as one uint16: half the lookups.
        byte_pairs = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
        self._pair_table = np.ascontiguousarray(self._table[:, byte_pairs])  # [3, 65536, 2]

    @abstractmethod
    def plan(self, width: int, height: int) -> Layout:
        """The Layout for an image of this size, without touching pixels."""

    @abstractmethod
    def crops(self, image: Image.Image, layout: Layout) -> np.ndarray:
        """uint8 `[k, 3, S, S]` RGB crops of an RGB image, in encoder order, as the plan says.

        For every strategy but phi3_hd these are exactly the views before normalisation
        (k = n_views); phi3_hd makes its global view from the normalised canvas, as the
        original does, so its crops are the tiles only.
        """

    def resize(self, image: Image.Image, size: tuple[int, int], filter: int = BICUBIC) -> np.ndarray:
        """uint8 `[h, w, 3]`: what `image.resize(size, filter)` gives, from this strategy's backend."""
        return resized_pixels(image, size, filter, self.backend)

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

    def apply(self, image: Image.Image) -> Views:
        """Convert to RGB (see `convert.to_rgb`), plan, cut and normalise."""
        rgb = to_rgb(image, self.exif_transpose)
        layout = self.plan(*rgb.size)
        pixel_values = self.views(rgb, layout)
        w, h = layout.view_wh
        if tuple(pixel_values.shape) != (layout.executed_views, 3, h, w):
            raise AssertionError(
                f"{self.name}: produced {tuple(pixel_values.shape)}, plan said {layout.executed_views} crops"
            )
        return Views(pixel_values=pixel_values, layout=layout)

    def views(self, rgb: Image.Image, layout: Layout) -> torch.Tensor:
        """float32 `[executed_views, 3, S, S]`; by default the normalised crops."""
        return self.normalize(self.crops(rgb, layout))

    def normalize(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 `[n, 3, H, W]` -> float32 `(x/255 - mean) / std` by table lookup (one pass)."""
        out = np.empty(crops.shape, dtype=np.float32)
        for c in range(3):
            if crops.shape[-1] % 2 == 0:
                pairs = np.ascontiguousarray(crops[:, c]).view(np.uint16)
                np.take(self._pair_table[c], pairs, axis=0, out=out[:, c].reshape(*pairs.shape, 2), mode="clip")
            else:
                np.take(self._table[c], crops[:, c], out=out[:, c], mode="clip")
        return torch.from_numpy(out)

    def _layout(self, width: int, height: int, **geometry: Any) -> Layout:
        return Layout(strategy=self.name, original_size=(width, height), tile_size=self.tile_size, **geometry)


def check_image_size(width: int, height: int) -> None:
    """Plans need a positive size; say so instead of dividing by zero."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def tiles_chw(canvas: np.ndarray, rows: int, cols: int, size: int, out: np.ndarray) -> None:
    """Cut an `[rows*S, cols*S, 3]` canvas into row-major `[rows*cols, 3, S, S]` tiles in `out`."""
    out.reshape(rows, cols, 3, size, size)[...] = canvas.reshape(rows, size, cols, size, 3).transpose(0, 2, 4, 1, 3)
