"""Pillow's `Image.resize` (BILINEAR and BICUBIC, RGB uint8) bit for bit, in torch.

Pillow resizes in two separable fixed-point passes (`src/libImaging/Resample.c`); see
docs/resampling.md for the algorithm, the pass-order rule of Pillow 13 and the sources. Here
each pass is a product of the uint8 pixels with Pillow's own integer coefficients, run as
float64 matrix products over bands of the coefficient matrix: every product and partial sum
is an integer below 2**53, so float64 holds them exactly whatever the summation order, and
the shift-and-clip that follows reproduces Pillow's integer arithmetic exactly. The same code
runs on the CPU and on CUDA; coefficient tables are cached per (in, out, filter, device).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision of the 8-bit coefficients
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


def vertical_first(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Pillow 13's pass order (`ImagingResampleInner`): the vertical pass runs first when the
    height shrinks by more than twice as many pixels as the width does; otherwise horizontal
    first. The passes round to 8 bits in between, so the order changes pixels."""
    (in_w, in_h), (out_w, out_h) = in_size, out_size
    return out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


class _Pass:
    """One axis of a resize as bands of its coefficient matrix, ready on a device.

    `channels` = 3 treats the axis as interleaved RGB (the coefficient matrix is expanded with
    the identity over the channels, so the pixels need no transposition)."""

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
    """uint8 `[H, W, 3]` (any device) -> uint8 `[h, w, 3]` on the same device, equal to
    `Image.fromarray(pixels).resize(size, resample)` bit for bit (`size` is (w, h), as PIL)."""
    if pixels.dtype != torch.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3] pixels, got {pixels.dtype} {tuple(pixels.shape)}")
    in_h, in_w = int(pixels.shape[0]), int(pixels.shape[1])
    out_w, out_h = int(size[0]), int(size[1])
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"target size must be positive, got {out_w}x{out_h}")
    need_x, need_y = out_w != in_w, out_h != in_h
    if not (need_x or need_y):
        return pixels.clone()
    device = str(pixels.device)
    horizontal = _pass(in_w, out_w, resample, 3, device) if need_x else None
    vertical = _pass(in_h, out_h, resample, 1, device) if need_y else None
    if vertical is not None and (horizontal is None or vertical_first((in_w, in_h), (out_w, out_h))):
        # Vertical first, over the columns the horizontal pass will read.
        x0, x1 = (horizontal.first, horizontal.last) if horizontal is not None else (0, in_w)
        x = pixels[:, x0:x1].reshape(in_h, -1).to(torch.float64)  # [H, W'*3]
        y = vertical(x, along_rows=True)  # [h, W'*3]
        if horizontal is None:
            return y.to(torch.uint8).view(out_h, out_w, 3)
        z = horizontal(y, along_rows=False, offset=x0 * 3)  # [w*3, h]
        return z.T.to(torch.uint8).reshape(out_h, out_w, 3)
    # Horizontal first, over the rows the vertical pass will read.
    y0, y1 = (vertical.first, vertical.last) if vertical is not None else (0, in_h)
    x = pixels[y0:y1].reshape(y1 - y0, -1).to(torch.float64)  # [H', W*3]
    y = horizontal(x, along_rows=False)  # [w*3, H']
    if vertical is None:
        return y.T.to(torch.uint8).reshape(out_h, out_w, 3)
    z = vertical(y.T, along_rows=True, offset=y0)  # [h, w*3]
    return z.to(torch.uint8).view(out_h, out_w, 3)
