"""Opening image files with clear errors instead of crashes deep inside PIL."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image


class ImageLoadError(Exception):
    """An image that cannot be used; `kind` is a short reason for the error row."""

    def __init__(self, source: str, kind: str, detail: str) -> None:
        super().__init__(f"{source}: {kind}: {detail}")
        self.source = source
        self.kind = kind


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file; raise ImageLoadError naming the file on failure."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(str(path), "too_large", str(exc)) from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(str(path), "missing", "file not found") from exc
    except Exception as exc:
        raise ImageLoadError(str(path), "undecodable", f"{type(exc).__name__}: {exc}") from exc
