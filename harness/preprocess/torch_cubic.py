"""torch's bicubic `F.interpolate` of a normalised image, reproduced on the CPU cores.

Phi-3-vision's global view is `F.interpolate(hd, size=(S, S), mode="bicubic")` of the whole
normalised canvas (float32, align_corners=False, no antialias). torch's CPU kernel computes
each output from 4x4 clamped taps with the cubic-convolution weights (A = -0.75): along x
first, then along y, each as `fma(t3, w3, fma(t2, w2, fma(t0, w0, t1 * w1)))` in float32 —
the order its compiled loop uses, found by experiment and matched on every value (tests).
`kernels._cubic_view` does the same from the uint8 canvas and the normalisation table, so the
normalised canvas is never built (`_cubic_view_pairs` for a factor of 2 along x, where taps are
shared). Only integer downscale factors are taken (Phi-3's canvas
is always a whole number of tiles): their weights are exact whatever the arithmetic (t is 0
or 1/2). Each kernel and kind of axis pair (t of 0 or 1/2 on each axis) is checked once per process
against torch itself on the first image that has it; on any difference torch is used.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from harness.preprocess import kernels

A = np.float32(-0.75)  # torch's cubic-convolution constant


def _near(x: np.float32) -> np.float32:  # |x| <= 1
    return ((A + np.float32(2)) * x - (A + np.float32(3))) * x * x + np.float32(1)


def _far(x: np.float32) -> np.float32:  # 1 < |x| < 2
    return ((A * x - np.float32(5) * A) * x + np.float32(8) * A) * x - np.float32(4) * A


@lru_cache(maxsize=64)
def cubic_weights(in_size: int, out_size: int) -> np.ndarray | None:
    """float32 weights of the 4 taps of one axis (the same for every output when the
    downscale factor is whole), or None when it is not (then only torch itself is exact)."""
    if in_size % out_size:
        return None
    factor = in_size // out_size
    t = np.float32(0.5 if factor % 2 == 0 else 0.0)  # source point i*k + (k-1)/2: half-way or on a pixel
    return np.array([_far(t + np.float32(1)), _near(t), _near(np.float32(1) - t), _far(np.float32(2) - t)],
                    dtype=np.float32)


_checked: dict[tuple[str, bool, bool], bool] = {}  # (kernel, even factor on y, on x) -> it equals torch


def kernel_name(factor_x: int) -> str:
    """The compiled view for a whole downscale factor along x: with a factor of 2 every pixel is
    a tap of two outputs, and normalising and filtering whole lines once is ~2.5x faster; larger
    factors read each pixel once at most, and odd ones one tap, straight from the canvas."""
    return "cubic_view_pairs" if factor_x == 2 else "cubic_view"


def cubic_view(pixels: np.ndarray, table: np.ndarray, size: tuple[int, int], out: torch.Tensor) -> None:
    """float32 `out [3, h, w]` = `F.interpolate` (bicubic) of `table[c][pixels[..., c]]`
    (`pixels` uint8 `[H, W, C >= 3]`) to `size` (h, w)."""
    (in_h, in_w), (out_h, out_w) = pixels.shape[:2], size
    rows, cols = cubic_weights(in_h, out_h), cubic_weights(in_w, out_w)
    factor_y, factor_x = in_h // out_h, in_w // out_w
    name = kernel_name(factor_x)
    key = (name, factor_y % 2 == 0, factor_x % 2 == 0)
    if rows is not None and cols is not None and _checked.get(key, True):
        kernels.for_this_process()[name](pixels, table, factor_y, factor_x, rows, cols, out.numpy())
        if key in _checked:
            return
        expected = torch_view(pixels, table, size)
        _checked[key] = bool(torch.equal(out, expected))
        if _checked[key]:
            return
        warnings.warn(f"the compiled bicubic view differs from this torch's F.interpolate for {in_w}x{in_h} -> "
                      f"{out_w}x{out_h}; using torch's own from now on", RuntimeWarning, stacklevel=2)
    out.copy_(torch_view(pixels, table, size))


def torch_view(pixels: np.ndarray, table: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The reference computation: normalise the whole image (numpy), then torch's interpolate."""
    return interpolate(torch.from_numpy(np.stack([table[c][pixels[..., c]] for c in range(3)])), size)


def interpolate(normalised: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torch's bicubic resize of a normalised `[3, H, W]` image, as Phi-3's code calls it: on a
    contiguous NCHW tensor (a channels-last input could take another kernel)."""
    return F.interpolate(normalised.contiguous()[None], size=size, mode="bicubic")[0]
