"""qwen_native (and views of variable size) against transformers' `Qwen2VLImageProcessorPil`:
identical pixels and patch rows, `image_grid_thw`, sizes the reference refuses refused too."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

from harness.preprocess import build_strategy
from harness.preprocess.qwen_native import smart_resize
from tests.helpers.images import random_image

SIZES = [
    (1, 1), (1, 3), (2, 1), (2, 2), (13, 2000), (2000, 13), (10, 2000), (3, 5), (28, 28), (27, 29), (55, 57),
    (56, 56), (100, 200),
    (200, 100), (336, 336), (337, 336), (640, 480), (704, 396), (808, 1100), (1920, 1080), (1250, 1000),
    (4000, 20), (20, 4000), (1, 200), (200, 1), (1003, 997), (2048, 2048),
]
BUDGETS = [{}, {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}, {"max_pixels": 64 * 28 * 28},
           {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}, {"backend": "torch"}]


def reference(params: dict) -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(**{k: v for k, v in params.items() if k in ("min_pixels", "max_pixels")})


@pytest.mark.parametrize("params", BUDGETS, ids=[str(b) for b in BUDGETS])
def test_pixels_patches_and_grid_equal_the_reference(params: dict) -> None:
    strategy = build_strategy("qwen_native", **params)
    ref = reference(params)
    for size in SIZES:
        image = random_image(*size)
        views = strategy.apply(image)
        out = ref(images=image, return_tensors="pt")
        layout = views.layout
        w, h = layout.view_wh
        assert views.pixel_values.shape == (1, 3, h, w)
        assert out["image_grid_thw"].tolist() == [list(layout.patch_grid)], size
        assert layout.patch_grid == (1, h // 14, w // 14) and w % 28 == 0 and h % 28 == 0
        ours = strategy.patches(views.pixel_values)
        assert torch.equal(ours, out["pixel_values"]), (params, size)


def test_extreme_ratios_are_refused_as_the_reference_refuses() -> None:
    strategy = build_strategy("qwen_native")
    for size in [(1, 201), (201, 1), (13, 4000), (4000, 13)]:
        with pytest.raises(ValueError, match="aspect ratio"):
            strategy.plan(*size)
        with pytest.raises(ValueError, match="aspect ratio"):
            reference({})(images=random_image(*size))
    strategy.plan(1, 200)  # exactly 200 is accepted by both
    reference({})(images=random_image(1, 200))


def test_smart_resize_equals_transformers_on_random_sizes() -> None:
    rng = random.Random(0)
    for _ in range(20000):
        w, h = rng.randint(1, 5000), rng.randint(1, 5000)
        lo = rng.choice([56 * 56, 4 * 784, 256 * 784])
        hi = rng.choice([lo, 64 * 784, 1280 * 784, 16384 * 784])
        if max(w, h) / min(w, h) > 200:
            continue
        assert smart_resize(h, w, 28, lo, hi) == hf_smart_resize(h, w, 28, lo, hi), (w, h, lo, hi)


def test_tokens_are_the_merged_grid_and_budget_holds() -> None:
    strategy = build_strategy("qwen_native", max_pixels=1280 * 28 * 28)
    for w, h in [(1920, 1080), (808, 1100), (100, 100), (4000, 3000)]:
        layout = strategy.plan(w, h)
        vw, vh = layout.view_wh
        assert vw * vh <= 1280 * 28 * 28
        assert (vh // 28) * (vw // 28) == math.prod(layout.patch_grid) // 4


def test_bad_parameters_fail_naming_them() -> None:
    with pytest.raises(ValueError, match="min_pixels"):
        build_strategy("qwen_native", min_pixels=10**7, max_pixels=10**6)
    with pytest.raises(ValueError, match="tile_size"):
        build_strategy("qwen_native", tile_size=336)
    with pytest.raises(ValueError, match="max_pixels"):
        build_strategy("qwen_native", max_pixels=0)


def test_grayscale_and_rgba_input_match() -> None:
    strategy = build_strategy("qwen_native")
    ref = reference({})
    base = np.asarray(random_image(300, 170))
    from PIL import Image

    for image in (Image.fromarray(base[..., 0]), Image.fromarray(np.dstack([base, base[..., :1]])).convert("RGBA")):
        ours = strategy.patches(strategy.apply(image).pixel_values)
        assert torch.equal(ours, ref(images=image, return_tensors="pt")["pixel_values"])


ONEVISION_SIZES = [(1, 1), (13, 4000), (4000, 13), (384, 384), (385, 384), (768, 384), (1920, 1080), (808, 1100),
                   (704, 396), (100, 200), (2304, 2304), (3000, 2000), (3, 5), (1152, 384)]


@pytest.mark.parametrize("params", [{"mean": (0.5,) * 3, "std": (0.5,) * 3}, {}, {"tile_size": 336},
                                    {"backend": "torch"}])
def test_llava_onevision_pixels_equal_the_reference(params: dict) -> None:
    from harness.preprocess._references import transformers_reference

    strategy = build_strategy("llava_onevision", **params)
    reference_fn = transformers_reference(strategy)
    for size in ONEVISION_SIZES:
        image = random_image(*size)
        views = strategy.apply(image)
        assert torch.equal(views.pixel_values, reference_fn(image)), (params, size)
        assert views.layout.n_views == 1 + views.layout.n_tiles


def test_llava_onevision_grids_equal_transformers_on_random_sizes() -> None:
    from transformers.image_processing_utils import select_best_resolution

    strategy = build_strategy("llava_onevision")
    pinpoints = [list(p) for p in strategy.grid_pinpoints]
    rng = random.Random(1)
    for _ in range(2000):
        w, h = rng.randint(1, 5000), rng.randint(1, 5000)
        ch, cw = select_best_resolution((h, w), pinpoints)
        assert strategy.plan(w, h).grid == (ch // 384, cw // 384), (w, h)
