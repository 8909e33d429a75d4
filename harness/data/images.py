"""Opening images with clear errors instead of crashes deep inside PIL, and one RGB conversion
for every odd mode (CMYK, 16-bit, palette with transparency, animated) so that a bad file
becomes either a correct image or an error naming the file and the reason."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from harness.preprocess.convert import to_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageLoadError(Exception):
    """An image that cannot be used; `kind` is a short reason for the error row."""

    def __init__(self, source: str, kind: str, detail: str) -> None:
        super().__init__(f"{source}: {kind}: {detail}")
        self.source = source
        self.kind = kind


def _error_kind(exc: Exception) -> str:
    text = str(exc).lower()
    if "truncated" in text or "premature end" in text or "broken data stream" in text:
        return "truncated"
    return "undecodable"


def decoded_to_rgb(image: Image.Image) -> Image.Image:
    """A decoded file as 8-bit RGB: high-bit-depth greyscale (I;16, I, F) scaled to 8 bits first
    (PIL's `convert` would clip it at 255), then the strategies' own conversion
    (`harness.preprocess.convert.to_rgb`: alpha composited onto white, as transformers does)."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        arr = np.asarray(image).astype(np.float64)
        if image.mode == "F":
            peak = 1.0 if arr.size and arr.max() <= 1.0 else 255.0
        else:
            peak = 65535.0 if image.mode.startswith("I;16") or (arr.size and arr.max() > 255) else 255.0
        image = Image.fromarray(np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
    return to_rgb(image)


def open_image(
    source: str | Path | bytes, *, name: str | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Open, fully decode (first frame of an animation) and convert to RGB a file or its bytes.

    `name` is how errors refer to the image (default: the path); `max_pixels` overrides PIL's
    `Image.MAX_IMAGE_PIXELS` (decompression-bomb limit) for this call. Raises ImageLoadError
    whose `kind` is one of: missing, empty, too_large, truncated, undecodable.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    label = name or ("<bytes>" if is_bytes else str(source))
    if is_bytes:
        if len(source) == 0:
            raise ImageLoadError(label, "empty", "zero bytes")
        fp: io.BytesIO | Path = io.BytesIO(bytes(source))
    else:
        fp = Path(source)
        try:
            if fp.stat().st_size == 0:
                raise ImageLoadError(label, "empty", "zero-byte file")
        except FileNotFoundError as exc:
            why = f"dangling symbolic link to {os.readlink(fp)}" if fp.is_symlink() else "file not found"
            raise ImageLoadError(label, "missing", why) from exc
    previous_limit = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                im.seek(0)
                im.load()
                return decoded_to_rgb(im).copy() if im.mode == "RGB" else decoded_to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(label, "too_large", str(exc)) from exc
    except ImageLoadError:
        raise
    except FileNotFoundError as exc:
        raise ImageLoadError(label, "missing", "file not found") from exc
    except Exception as exc:
        raise ImageLoadError(label, _error_kind(exc), f"{type(exc).__name__}: {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
