"""An RGB image's pixels without a copy: Pillow's own memory, 4 bytes per pixel (RGBX).

Pillow keeps an RGB image as R, G, B and a padding byte per pixel. Converting it to a numpy
`[H, W, 3]` array (`np.asarray(image)`) packs it through `tobytes`: about 4 ns a pixel, as
long as the whole resize of a 3-megapixel photo. Pillow (11.2 and newer) also exports that
memory through the Arrow C data interface without copying it (read here with pyarrow, a
dependency already); the only condition is that the image is one block of memory, which
`Image.core.set_use_block_allocator(1)` asks of every image Pillow allocates from then on.
When the export is not available (an older Pillow), the pixels are copied instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from PIL import Image

# Every image in one block of memory, so that every image can be exported without a copy.
if hasattr(Image.core, "set_use_block_allocator"):
    Image.core.set_use_block_allocator(1)


def rgbx(image: Image.Image) -> np.ndarray:
    """uint8 `[H, W, 4]` (R, G, B, padding) of an RGB image; read-only; shares Pillow's memory
    when it can (the array keeps that memory alive)."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    width, height = image.size
    try:
        values = pa.array(image).values  # Arrow's fixed-size lists of 4 bytes, zero copy
        flat = values.to_numpy(zero_copy_only=True)
    except (pa.ArrowException, TypeError, ValueError, AttributeError):
        flat = None
    if flat is not None and flat.size == width * height * 4:
        return flat.reshape(height, width, 4)
    out = np.empty((height, width, 4), dtype=np.uint8)  # a copy: packed RGB, padded
    out[..., :3] = np.asarray(image)
    out[..., 3] = 255
    return out


def with_padding(rgb: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` -> `[H, W, 4]` (a copy with a padding byte), for callers with packed RGB."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected uint8 [H, W, 3] or [H, W, 4] pixels, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[2] == 4:
        return rgb
    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out
