"""Test images whose every pixel matters to a resampler."""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise plus a gradient: every resampling tap matters, nothing is flat."""
    rng = np.random.default_rng(seed + width * 7919 + height)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ramp = (np.arange(width, dtype=np.uint16)[None, :, None] * 255 // max(1, width - 1)).astype(np.uint8)
    return Image.fromarray(np.where(rng.random((height, width, 1)) < 0.5, noise, ramp).astype(np.uint8))
