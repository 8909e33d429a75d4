"""Pillow's `Image.resize` (BILINEAR and BICUBIC, RGB uint8) bit for bit, on CPU cores or a torch device.

Pillow resizes in two separable fixed-point passes (`src/libImaging/Resample.c`); see
docs/resampling.md for the algorithm, the pass-order rule of Pillow 13 and the sources.

`resize_array` (numpy, the CPU) runs Pillow's integer loops compiled by numba over all cores
(`harness.preprocess.kernels`), and can compute only a window of the output (a crop) straight
into a destination (a canvas): each output pixel depends only on its own taps, so that changes
no byte. `resize` (torch, any device: the GPU path) runs each pass as float64 matrix
products of the pixels with bands of Pillow's integer coefficient matrix: every product and
partial sum is an integer below 2**53, so float64 holds them exactly whatever the summation
order, and the shift-and-clip that follows reproduces Pillow's integer arithmetic exactly.
Coefficient tables are cached per (in, out, filter, device).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import PIL
import torch
from PIL import Image

from harness.preprocess import kernels
from harness.preprocess.kernels import PRECISION_BITS
from harness.preprocess.pixels import with_padding

BLOCK = 32  # output pixels per band of the coefficient matrix (one matrix product each)


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Pillow's bicubic_filter, written in the same operation order
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


FILTERS = {Image.Resampling.BILINEAR: (_bilinear, 1.0), Image.Resampling.BICUBIC: (_bicubic, 2.0)}


@lru_cache(maxsize=1024)
def coefficients(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first input index, number of taps, int64 coefficients `[out, ksize]`) of one axis, as
    Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` compute them (no box, no reducing_gap).
    Read-only arrays: they are cached."""
    if resample not in FILTERS:
        raise ValueError(f"unsupported resample filter {resample!r}; valid: BILINEAR (2), BICUBIC (3)")
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    kernel, base_support = FILTERS[resample]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    ksize = math.ceil(support) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    # C casts truncate toward zero; a negative start is clamped to 0 either way.
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)
    count = np.minimum((center + support + 0.5).astype(np.int64), in_size) - first
    taps = np.arange(ksize)
    used = taps[None, :] < count[:, None]
    offsets = (taps[None, :] + first[:, None] - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = np.where(used, kernel(offsets), 0.0)
    total = np.cumsum(weights, axis=1)[:, -1]  # left-to-right, as the C loop adds them
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    scaled = weights * (1 << PRECISION_BITS)
    fixed = np.where(weights < 0, np.trunc(-0.5 + scaled), np.trunc(0.5 + scaled)).astype(np.int64)
    for array in (first, count, fixed):
        array.flags.writeable = False
    return first, count, fixed


# Pillow 13 changed the pass order (python-pillow/Pillow#9549); earlier releases always run
# the horizontal pass first. The installed Pillow is the reference, so its rule is followed.
PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13


def vertical_first(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Pillow's pass order (`ImagingResampleInner`): from Pillow 13 the vertical pass runs first
    when the height shrinks by more than twice as many pixels as the width does; otherwise (and
    always before Pillow 13) horizontal first. The passes round to 8 bits in between, so the
    order changes pixels."""
    (in_w, in_h), (out_w, out_h) = in_size, out_size
    return PILLOW_13 and out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


@lru_cache(maxsize=256)
def taps(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`coefficients` as the compiled kernels take them: int32 first, count, coefficients."""
    return tuple(np.ascontiguousarray(a, dtype=np.int32) for a in coefficients(in_size, out_size, resample))


Window = tuple[int, int, int, int]  # (left, top, width, height) of the output


def resize_array(pixels: np.ndarray, size: tuple[int, int], resample: int, window: Window | None = None,
                 out: np.ndarray | None = None, transposed: bool = False) -> np.ndarray:
    """RGBX uint8 `[H, W, 4]` (see `harness.preprocess.pixels`; packed `[H, W, 3]` is padded
    first, a copy) -> uint8 `[h, w, C]` whose first 3 channels equal
    `Image.fromarray(rgb).resize(size, resample)`, or its `window` (left, top, width, height)
    when given. Written into `out` (uint8 `[h, w, 3 or 4]`, e.g. a region of a canvas; straight
    into it when its pixels are 4 contiguous bytes, else through an RGBX result) when given, else
    into a new RGBX array. On the CPU cores.

    `transposed`: the result is that of the transposed image (PIL's `TRANSPOSE`) resized to
    `size` and transposed back, without moving any pixel: a pass along the transposed rows
    is a pass along the columns here, with the same taps, so only the order of the two passes
    (Pillow's rule applied to the transposed sizes) changes. `size` and `window` then are in
    the pixels' own orientation."""
    pixels = np.ascontiguousarray(with_padding(pixels))
    in_h, in_w = pixels.shape[:2]
    out_w, out_h = int(size[0]), int(size[1])
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"target size must be positive, got {out_w}x{out_h}")
    x0, y0, w, h = (0, 0, out_w, out_h) if window is None else (int(v) for v in window)
    if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > out_w or y0 + h > out_h:
        raise ValueError(f"window {window} is not inside the {out_w}x{out_h} output")
    if out is None:
        out = np.empty((h, w, 4), dtype=np.uint8)
    elif out.dtype != np.uint8 or out.shape[:2] != (h, w) or out.shape[2] not in (3, 4):
        raise ValueError(f"out must be uint8 [{h}, {w}, 3 or 4], got {out.dtype} {out.shape}")
    if out.shape[2] == 3 or out.strides[1:] != (4, 1):  # the kernels write whole RGBX words
        out[...] = resize_array(pixels, size, resample, window, transposed=transposed)[..., : out.shape[2]]
        return out
    run = kernels.for_this_process()
    need_x, need_y = out_w != in_w, out_h != in_h
    first_pass_vertical = (not vertical_first((in_h, in_w), (out_h, out_w)) if transposed
                           else vertical_first((in_w, in_h), (out_w, out_h)))
    if not need_y:  # one horizontal pass (or a copy) over the window's rows
        if need_x:
            run["horizontal"](_words(pixels[y0 : y0 + h]), *_window_taps(in_w, out_w, resample, x0, w), _words(out))
        else:
            out[...] = pixels[y0 : y0 + h, x0 : x0 + w, : out.shape[2]]
        return out
    first_y, count_y, coef_y = _window_taps(in_h, out_h, resample, y0, h)
    if not need_x:
        run["vertical"](pixels.reshape(in_h, -1), x0, first_y, count_y, coef_y, _words(out))
        return out
    first_x, count_x, coef_x = _window_taps(in_w, out_w, resample, x0, w)
    if first_pass_vertical:
        # Vertical first, over the columns the horizontal pass reads.
        lo, hi = int(first_x[0]), int(first_x[-1] + count_x[-1])
        middle = np.empty((h, hi - lo, 4), dtype=np.uint8)
        run["vertical"](pixels.reshape(in_h, -1), lo, first_y, count_y, coef_y, _words(middle))
        run["horizontal"](_words(middle), first_x - lo, count_x, coef_x, _words(out))
    else:
        # Horizontal first, over the rows the vertical pass reads.
        lo, hi = int(first_y[0]), int(first_y[-1] + count_y[-1])
        middle = np.empty((hi - lo, w, 4), dtype=np.uint8)
        run["horizontal"](_words(pixels[lo:hi]), first_x, count_x, coef_x, _words(middle))
        run["vertical"](middle.reshape(hi - lo, -1), 0, first_y - lo, count_y, coef_y, _words(out))
    return out


def transpose_array(pixels: np.ndarray) -> np.ndarray:
    """RGBX `[H, W, 4]` -> contiguous `[W, H, 4]` (PIL's `Image.Transpose.TRANSPOSE`)."""
    pixels = np.ascontiguousarray(with_padding(pixels))
    out = np.empty((pixels.shape[1], pixels.shape[0], 4), dtype=np.uint8)
    kernels.for_this_process()["transpose"](_words(pixels), _words(out))
    return out


def _words(pixels: np.ndarray) -> np.ndarray:
    """RGBX `[H, W, 4]` uint8 whose rows are contiguous (e.g. a region of a canvas) as `[H, W]`
    uint32: one word per pixel, no copy."""
    return pixels.view(np.uint32)[..., 0]


def _window_taps(in_size: int, out_size: int, resample: int, start: int, length: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first, count, coef = taps(in_size, out_size, resample)
    return first[start : start + length], count[start : start + length], coef[start : start + length]


class _Pass:
    """One axis of a resize as bands of its coefficient matrix, ready on a device.

    `channels` = 3 or 4 treats the axis as interleaved RGB(X) (the coefficient matrix is expanded
    with the identity over the channels, so the pixels need no transposition)."""

    def __init__(self, in_size: int, out_size: int, resample: int, channels: int, device: torch.device) -> None:
        first, count, fixed = coefficients(in_size, out_size, resample)
        self.out = out_size * channels
        self.first = int(first[0])  # first and last input pixel any output uses
        self.last = int((first + count).max())
        self.bands: list[tuple[int, int, int, int, torch.Tensor]] = []
        eye = np.eye(channels)
        taps = np.arange(fixed.shape[1])
        for o0 in range(0, out_size, BLOCK):
            o1 = min(o0 + BLOCK, out_size)
            start, end = int(first[o0:o1].min()), int((first[o0:o1] + count[o0:o1]).max())
            band = np.zeros((o1 - o0, end - start))
            rows, cols = np.nonzero(taps[None, :] < count[o0:o1, None])
            band[rows, first[o0:o1][rows] - start + cols] = fixed[o0:o1][rows, cols]
            band = np.kron(band, eye)  # channel-diagonal
            self.bands.append((o0 * channels, o1 * channels, start * channels, end * channels,
                               torch.from_numpy(band).to(device)))

    def __call__(self, x: torch.Tensor, along_rows: bool, offset: int = 0) -> torch.Tensor:
        """float64 pass: `along_rows` contracts dim 0 of `x [In, M]` -> `[Out, M]`; otherwise
        dim 1 of `x [M, In]` -> `[Out, M]` (transposed). `offset` = first input index in `x`.
        Returns Pillow's 8-bit result of the pass (integers 0..255 in float64)."""
        m = x.shape[1] if along_rows else x.shape[0]
        y = torch.empty((self.out, m), dtype=torch.float64, device=x.device)
        for o0, o1, start, end, band in self.bands:
            span = x[start - offset : end - offset] if along_rows else x[:, start - offset : end - offset].T
            torch.matmul(band, span, out=y[o0:o1])
        # (sum + 2**(P-1)) >> P, clipped to 8 bits: exact in float64 (power-of-two scaling).
        return y.add_(1 << (PRECISION_BITS - 1)).mul_(2.0**-PRECISION_BITS).floor_().clamp_(0, 255)


@lru_cache(maxsize=32)  # a horizontal 2000 -> 448 pass holds ~5 MB of bands: keep the recent sizes only
def _pass(in_size: int, out_size: int, resample: int, channels: int, device: str) -> _Pass:
    return _Pass(in_size, out_size, resample, channels, torch.device(device))


def resize(pixels: torch.Tensor, size: tuple[int, int], resample: int) -> torch.Tensor:
    """uint8 `[H, W, C]` (C = 3, or 4 for RGBX; any device) -> uint8 `[h, w, C]` on the same
    device, equal to `Image.fromarray(pixels).resize(size, resample)` bit for bit in the first
    3 channels (`size` is (w, h), as PIL)."""
    if pixels.dtype != torch.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"expected uint8 [H, W, 3 or 4] pixels, got {pixels.dtype} {tuple(pixels.shape)}")
    in_h, in_w, channels = (int(n) for n in pixels.shape)
    out_w, out_h = int(size[0]), int(size[1])
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"target size must be positive, got {out_w}x{out_h}")
    need_x, need_y = out_w != in_w, out_h != in_h
    if not (need_x or need_y):
        return pixels.clone()
    device = str(pixels.device)
    horizontal = _pass(in_w, out_w, resample, channels, device) if need_x else None
    vertical = _pass(in_h, out_h, resample, 1, device) if need_y else None
    if vertical is not None and (horizontal is None or vertical_first((in_w, in_h), (out_w, out_h))):
        # Vertical first, over the columns the horizontal pass will read.
        x0, x1 = (horizontal.first, horizontal.last) if horizontal is not None else (0, in_w)
        x = pixels[:, x0:x1].reshape(in_h, -1).to(torch.float64)  # [H, W'*C]
        y = vertical(x, along_rows=True)  # [h, W'*C]
        if horizontal is None:
            return y.to(torch.uint8).view(out_h, out_w, channels)
        z = horizontal(y, along_rows=False, offset=x0 * channels)  # [w*C, h]
        return z.T.to(torch.uint8).reshape(out_h, out_w, channels)
    # Horizontal first, over the rows the vertical pass will read.
    y0, y1 = (vertical.first, vertical.last) if vertical is not None else (0, in_h)
    x = pixels[y0:y1].reshape(y1 - y0, -1).to(torch.float64)  # [H', W*C]
    y = horizontal(x, along_rows=False)  # [w*C, H']
    if vertical is None:
        return y.T.to(torch.uint8).reshape(out_h, out_w, channels)
    z = vertical(y.T, along_rows=True, offset=y0)  # [h, w*C]
    return z.to(torch.uint8).view(out_h, out_w, channels)
