"""One way into the strategies: any PIL image -> a valid RGB image, as transformers does it.

transformers' `image_transforms.convert_to_rgb` (used by every PIL image processor) composites
images with an alpha band or a `transparency` entry (RGBA, LA, PA, P with transparency) onto
white, and sends everything else (L, I, I;16, F, CMYK, YCbCr, P) through `Image.convert("RGB")`.
The original InternVL, Phi-3 and LLaVA code call `.convert("RGB")` directly, which drops alpha
instead of compositing; the two differ only where pixels are transparent.
"""

from __future__ import annotations

from PIL import Image, ImageOps


def image_name(image: Image.Image) -> str:
    """A short name for error messages: the file name when PIL knows it."""
    filename = getattr(image, "filename", "") or ""
    return f"image {filename!r}" if filename else "image"


def check_size(image: Image.Image) -> None:
    """Fail clearly on empty images and on ones past PIL's decompression-bomb limit."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ValueError(f"{image_name(image)} has zero size {width}x{height} (mode {image.mode}); cannot preprocess")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > 2 * limit:
        raise ValueError(
            f"{image_name(image)} of {width}x{height} = {width * height} pixels exceeds the decompression-bomb "
            f"limit of {2 * limit} (PIL.Image.MAX_IMAGE_PIXELS x 2)"
        )


def to_rgb(image: Image.Image, exif_transpose: bool = False) -> Image.Image:
    """The RGB image the references would process.

    `exif_transpose` applies the EXIF orientation tag first (`ImageOps.exif_transpose`); the
    references do not (they use the stored pixel order), so it is off by default.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    check_size(image)
    if exif_transpose:
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
