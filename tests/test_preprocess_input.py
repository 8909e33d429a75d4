"""Bad input: every mode becomes RGB as transformers' convert_to_rgb does; EXIF is an option; empty
images and decompression bombs fail with a clear ValueError."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from harness.preprocess import build_strategy
from harness.preprocess._references import transformers_reference
from harness.preprocess.convert import to_rgb


def _modes() -> dict[str, Image.Image]:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (90, 120, 4), dtype=np.uint8))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 3
    i16 = Image.fromarray(rng.integers(0, 65535, (90, 120), dtype=np.uint16))
    return {
        "L": rgb.convert("L"),
        "LA": rgba.convert("LA"),
        "I;16": i16,
        "I": Image.fromarray(rng.integers(-10, 400, (90, 120), dtype=np.int32)),
        "RGBA": rgba,
        "P": palette,
        "P+transparency": palette_t,
        "CMYK": rgb.convert("CMYK"),
        "1": rgb.convert("1"),
    }


@pytest.mark.parametrize("mode", list(_modes()))
def test_modes_convert_like_transformers(mode: str) -> None:
    image = _modes()[mode]
    for strategy in (build_strategy("center_crop"), build_strategy("internvl_dynamic", max_tiles=4)):
        ours = strategy.apply(image).pixel_values
        assert torch.equal(ours, transformers_reference(strategy)(image)), mode


def test_rgba_is_composited_on_white() -> None:
    transparent = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    assert to_rgb(transparent).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    rgb = Image.new("RGB", (8, 8))
    assert to_rgb(rgb) is rgb


def test_exif_orientation_is_an_option() -> None:
    image = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    loaded = Image.open(io.BytesIO(buf.getvalue()))
    assert build_strategy("phi3_hd").apply(loaded).layout.original_size == (40, 20)
    assert build_strategy("phi3_hd", exif_transpose=True).apply(loaded).layout.original_size == (20, 40)


@pytest.mark.parametrize("size", [(0, 5), (5, 0), (0, 0)])
def test_zero_sized_image_fails_clearly(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=rf"zero size {size[0]}x{size[1]}"):
        build_strategy("resize").apply(Image.new("RGB", size))


def test_decompression_bomb_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="decompression-bomb"):
        build_strategy("resize").apply(Image.new("RGB", (20, 20)))


def test_not_an_image_fails_clearly() -> None:
    with pytest.raises(TypeError, match="PIL"):
        build_strategy("resize").apply(np.zeros((4, 4, 3), dtype=np.uint8))  # type: ignore[arg-type]


def test_mode_fixtures_are_what_they_claim() -> None:
    assert {k: v.mode for k, v in _modes().items()} == {
        "L": "L", "LA": "LA", "I;16": "I;16", "I": "I", "RGBA": "RGBA", "P": "P", "P+transparency": "P",
        "CMYK": "CMYK", "1": "1",
    }
