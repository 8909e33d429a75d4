"""Where a strategy's pixel work runs: the CPU's cores, Pillow itself, or a torch device.

A strategy says *what* to do with an image (resize to this size, keep this window, paste into
a canvas, cut tiles, normalise); an `Ops` object does it, on one kind of array:

- `NumbaOps` (backend `numba`, the default on the CPU): numpy arrays of Pillow's own RGBX
  memory, resized by the compiled kernels of `harness.preprocess.kernels` on all cores;
- `PillowOps` (backend `pil`): the same arrays, resized by Pillow's `Image.resize` itself
  and interpolated by torch's `F.interpolate`, the references the others are tested against;
- `TorchOps` (backend `torch`, the default with `preprocess.device=cuda`): torch tensors on
  any device, resized by `harness.preprocess.resample.resize`.

All three give the same bytes, and the same float32 views (a 256-entry lookup table per
channel does the normalisation everywhere). Views are always float32 torch tensors
`[n, 3, h, w]` on the ops' device.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image

from harness.preprocess import kernels, resample
from harness.preprocess.pixels import rgbx
from harness.preprocess.torch_cubic import cubic_view, interpolate, torch_view

Window = tuple[int, int, int, int]  # (left, top, width, height) of a resized image


class Ops:
    """Pixel operations on one kind of array. `pixels` are uint8 `[H, W, C]`, C = 3 or 4
    (RGB plus padding); only the first 3 channels are read."""

    device = torch.device("cpu")

    def source(self, image: Image.Image) -> Any:
        """The pixels of an RGB image, as this ops' arrays, still on the CPU (a DataLoader
        worker makes them; `upload` moves them)."""
        raise NotImplementedError

    def upload(self, pixels: Any) -> Any:
        """`source`'s pixels on the ops' device."""
        return pixels

    def resize(self, pixels: Any, size: tuple[int, int], filter: int, window: Window | None = None,
               out: Any = None) -> Any:
        """`Image.resize(size, filter)` of the pixels (its `window` only, when given), written
        into `out` (e.g. a region of a canvas) when given; returns the result."""
        raise NotImplementedError

    def resize_transposed(self, pixels: Any, size: tuple[int, int], filter: int, out: Any) -> Any:
        """`out` = the transposed image resized to `size` (in the transposed frame, as PIL),
        transposed back: what the Phi-3 code computes for tall images."""
        resized = self.resize(self.transpose(pixels), size, filter)
        out[..., :3] = resized.swapaxes(0, 1)[..., :3]
        return out

    def canvas(self, height: int, width: int, fill: int, inside: tuple[int, int, int, int] | None = None) -> Any:
        """A uint8 canvas filled with one grey level, except the box `inside` (left, top,
        right, bottom) when given, which the caller is about to fill."""
        canvas = self._empty(height, width)
        left, top, right, bottom = inside if inside is not None else (0, 0, 0, 0)
        canvas[:top] = fill
        canvas[bottom:] = fill
        canvas[top:bottom, :left] = fill
        canvas[top:bottom, right:] = fill
        return canvas

    def _empty(self, height: int, width: int) -> Any:
        raise NotImplementedError

    def transpose(self, pixels: Any) -> Any:
        """Rows become columns (PIL's `Image.Transpose.TRANSPOSE`)."""
        raise NotImplementedError

    def normalize_tiles(self, pixels: Any, rows: int, cols: int, table: np.ndarray, out: torch.Tensor) -> None:
        """Cut `pixels [rows*th, cols*tw, C]` into row-major tiles and write `table[c][value]`
        into float32 `out [rows*cols, 3, th, tw]`."""
        raise NotImplementedError

    def cubic_view(self, pixels: Any, table: np.ndarray, out: torch.Tensor) -> None:
        """float32 `out [3, h, w]` = torch's bicubic `F.interpolate` of the normalised pixels
        (`table[c][value]`) to out's size, as Phi-3's global view is made."""
        raise NotImplementedError

    def views(self, count: int, height: int, width: int) -> torch.Tensor:
        """An uninitialised float32 `[count, 3, height, width]` for the views."""
        return torch.empty((count, 3, height, width), dtype=torch.float32, device=self.device)


class CpuOps(Ops):
    """numpy arrays on the CPU: Pillow's own RGBX memory; the compiled tile normaliser."""

    def source(self, image: Image.Image) -> np.ndarray:
        return rgbx(image)

    def _empty(self, height: int, width: int) -> np.ndarray:
        return np.empty((height, width, 4), dtype=np.uint8)

    def transpose(self, pixels: np.ndarray) -> np.ndarray:
        return resample.transpose_array(pixels)

    def normalize_tiles(self, pixels: np.ndarray, rows: int, cols: int, table: np.ndarray, out: torch.Tensor) -> None:
        _check_tiles(pixels.shape, rows, cols, out)
        kernels.for_this_process()["normalize_tiles"](pixels, rows, cols, table, out.numpy())


class NumbaOps(CpuOps):
    """The default on the CPU: resizes and Phi-3's bicubic view by the compiled kernels."""

    def resize(self, pixels: np.ndarray, size: tuple[int, int], filter: int, window: Window | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        return resample.resize_array(pixels, size, filter, window, out)

    def resize_transposed(self, pixels: np.ndarray, size: tuple[int, int], filter: int, out: np.ndarray) -> np.ndarray:
        return resample.resize_array(pixels, (size[1], size[0]), filter, out=out, transposed=True)

    def cubic_view(self, pixels: np.ndarray, table: np.ndarray, out: torch.Tensor) -> None:
        cubic_view(pixels, table, tuple(out.shape[1:]), out)


class PillowOps(CpuOps):
    """The references: Pillow's own `Image.resize` and torch's own `F.interpolate`."""

    def resize(self, pixels: np.ndarray, size: tuple[int, int], filter: int, window: Window | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        height, width = pixels.shape[:2]
        raw = "RGBX" if pixels.shape[2] == 4 else "RGB"
        image = Image.frombytes("RGB", (width, height), np.ascontiguousarray(pixels).tobytes(), "raw", raw)
        size = (int(size[0]), int(size[1]))
        return _place(np.asarray(image.resize(size, filter) if size != image.size else image), window, out)

    def cubic_view(self, pixels: np.ndarray, table: np.ndarray, out: torch.Tensor) -> None:
        out.copy_(torch_view(pixels, table, tuple(out.shape[1:])))


class TorchOps(Ops):
    """torch tensors on one device (CPU or CUDA); resize by `resample.resize`."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._tables: dict[int, torch.Tensor] = {}

    def source(self, image: Image.Image) -> torch.Tensor:
        with warnings.catch_warnings():  # Pillow's memory is read-only; it is only read
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(rgbx(image))

    def upload(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.to(self.device, non_blocking=True)

    def resize(self, pixels: torch.Tensor, size: tuple[int, int], filter: int, window: Window | None = None,
               out: torch.Tensor | None = None) -> torch.Tensor:
        return _place(resample.resize(pixels, size, filter), window, out)

    def _empty(self, height: int, width: int) -> torch.Tensor:
        return torch.empty((height, width, 4), dtype=torch.uint8, device=self.device)

    def transpose(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.transpose(0, 1).contiguous()

    def normalize_tiles(self, pixels: torch.Tensor, rows: int, cols: int, table: np.ndarray,
                        out: torch.Tensor) -> None:
        tile_h, tile_w = _check_tiles(tuple(pixels.shape), rows, cols, out)
        tiles = self._normalised(pixels, table).view(rows, tile_h, cols, tile_w, 3).permute(0, 2, 4, 1, 3)
        out.view(rows, cols, 3, tile_h, tile_w).copy_(tiles)

    def cubic_view(self, pixels: torch.Tensor, table: np.ndarray, out: torch.Tensor) -> None:
        out.copy_(interpolate(self._normalised(pixels, table).permute(2, 0, 1), tuple(out.shape[1:])))

    def _normalised(self, pixels: torch.Tensor, table: np.ndarray) -> torch.Tensor:
        """float32 `[H, W, 3]`: `table[c][value]` of every pixel, on the device."""
        key = id(table)
        if key not in self._tables:  # a strategy's table lives as long as the strategy
            self._tables[key] = torch.from_numpy(np.ascontiguousarray(table)).to(self.device)
        channels = torch.arange(3, device=self.device).view(1, 1, 3)
        return self._tables[key][channels, pixels[..., :3].long()]


def _place(resized: Any, window: Window | None, out: Any) -> Any:
    """A whole resize -> its `window` (left, top, width, height), written into `out` when given."""
    if window is not None:
        left, top, w, h = window
        resized = resized[top : top + h, left : left + w]
    if out is None:
        return resized
    out[..., :3] = resized[..., :3]
    return out


def _check_tiles(shape: tuple[int, ...], rows: int, cols: int, out: torch.Tensor) -> tuple[int, int]:
    tile_h, tile_w = int(out.shape[2]), int(out.shape[3])
    if tuple(shape[:2]) != (rows * tile_h, cols * tile_w) or tuple(out.shape[:2]) != (rows * cols, 3):
        raise ValueError(f"pixels {tuple(shape)} do not make {rows}x{cols} tiles of {tile_h}x{tile_w} into "
                         f"{tuple(out.shape)}")
    return tile_h, tile_w


BACKENDS = ("auto", "numba", "pil", "torch")
DEVICES = ("cpu", "cuda")


def build_ops(backend: str, device: str) -> Ops:
    """The ops for a `preprocess.backend` and `preprocess.device`; a clear error otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown preprocess backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown preprocess device {device!r}; valid: {', '.join(DEVICES)}")
    if device == "cuda":
        if backend not in ("auto", "torch"):
            raise ValueError(f"preprocess.backend={backend} runs on the CPU; with preprocess.device=cuda use "
                             f"backend auto or torch")
        if not torch.cuda.is_available():
            raise ValueError("preprocess.device=cuda needs a CUDA GPU, and torch sees none here; "
                             "use preprocess.device=cpu")
        return TorchOps("cuda")
    if backend == "torch":
        return TorchOps("cpu")
    return PillowOps() if backend == "pil" else NumbaOps()
