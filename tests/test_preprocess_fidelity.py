"""Pixels equal the references: transformers' PIL processors built offline from explicit parameters.

`center_crop` vs CLIPImageProcessorPil, `resize` vs GotOcr2ImageProcessorPil(crop_to_patches=False),
`internvl_dynamic` vs GotOcr2ImageProcessorPil(crop_to_patches=True, 448, ImageNet mean/std,
max_patches 12 and 6), `llava_anyres` vs LlavaNextImageProcessorPil (pinpoint_order "wh" vs the
same processor with each pinpoint swapped, which is how original LLaVA reads them).
`phi3_hd` has no transformers implementation: it is compared with a transcription of the
remote code (`harness.preprocess._references.phi3_reference`) in which PIL stands in for
torchvision (not installed): `F.resize` on a PIL image is PIL bilinear anyway, `F.pad` is
`ImageOps.expand`, `ToTensor`/`Normalize` are written out in torch float32.
"""

from __future__ import annotations

import pytest
import torch

from harness.preprocess import build_strategy
from harness.preprocess._references import transformers_reference
from tests.helpers.images import random_image

SIZES = [
    (1, 1), (13, 4000), (4000, 13), (336, 336), (448, 448), (337, 336), (671, 336), (672, 336), (896, 448),
    (1344, 1344), (1920, 1080), (808, 1100), (704, 396), (100, 200), (200, 100), (500, 2000), (640, 480),
    (100, 100), (1250, 1000), (3, 5), (1008, 336),
]
# Phi-3 makes num_crops + 1 crops and a full HD canvas for every size; a subset keeps the suite fast.
PHI3_SIZES = [(1, 1), (13, 4000), (4000, 13), (336, 336), (1920, 1080), (808, 1100), (704, 396), (100, 200), (3, 5)]
CONFIGS = [
    ("resize", {}),
    ("resize", {"tile_size": 448, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}),
    ("center_crop", {}),
    ("internvl_dynamic", {"max_tiles": 12}),
    ("internvl_dynamic", {"max_tiles": 6}),
    ("llava_anyres", {}),
    ("llava_anyres", {"pinpoint_order": "wh"}),
    ("phi3_hd", {"num_crops": 16}),
    ("phi3_hd", {"num_crops": 4}),
]





IMAGES = {size: random_image(*size) for size in SIZES}


# The default (compiled, numba) and Pillow itself always; the torch resampler (the GPU path, run
# here on the CPU, several times slower than the others there) in the slow part.
@pytest.mark.parametrize("backend", ["numba", "pil", pytest.param("torch", marks=pytest.mark.slow)])
@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=[f"{n}-{p}" for n, p in CONFIGS])
def test_pixels_equal_the_reference(name: str, params: dict, backend: str) -> None:
    """With Pillow's resize, and with its two reimplementations (harness.preprocess.resample)."""
    strategy = build_strategy(name, backend=backend, **params)
    reference = transformers_reference(strategy)
    for size in PHI3_SIZES if name == "phi3_hd" else SIZES:
        image = IMAGES[size]
        ours = strategy.apply(image).pixel_values
        ref = reference(image)
        assert ours.shape == ref.shape, (size, ours.shape, ref.shape)
        diff = float((ours - ref).abs().max())
        assert diff <= 1e-5, (name, params, size, diff)


def test_llava_and_internvl_at_another_tile_size() -> None:
    """Scaled pinpoints / tiles equal transformers configured with the scaled values."""
    for strategy in (build_strategy("llava_anyres", tile_size=224), build_strategy("internvl_dynamic", tile_size=224),
                     build_strategy("internvl_dynamic", tile_size=224, backend="torch")):
        reference = transformers_reference(strategy)
        for size in [(1, 1), (700, 300), (1920, 1080), (224, 448)]:
            image = IMAGES[size] if size in IMAGES else random_image(*size)
            assert torch.equal(strategy.apply(image).pixel_values, reference(image)), (strategy.name, size)


def test_thumbnail_off_drops_only_the_last_view() -> None:
    image = IMAGES[(1920, 1080)]
    with_thumb = build_strategy("internvl_dynamic").apply(image).pixel_values
    without = build_strategy("internvl_dynamic", thumbnail=False).apply(image).pixel_values
    assert torch.equal(without, with_thumb[:-1])


def test_phi3_global_view_is_the_interpolated_canvas_and_padding_is_white() -> None:
    strategy = build_strategy("phi3_hd")
    image = IMAGES[(1920, 1080)]
    views = strategy.apply(image)
    white = (1.0 - torch.tensor(strategy.mean)) / torch.tensor(strategy.std)
    top = views.layout.content_box[1]
    assert top == 31 and views.layout.grid == (3, 5)
    first_tile = views.pixel_values[1]
    assert torch.allclose(first_tile[:, :top, :], white[:, None, None].expand(3, top, 336))
    assert not torch.allclose(first_tile[:, top, :], white[:, None].expand(3, 336))
    without_padding = build_strategy("phi3_hd", pad_to_max_crops=False).apply(image).pixel_values
    assert torch.equal(without_padding, views.pixel_values[:16])
