"""Layouts: the reference table of preprocessing.md §5, plan/apply agreement, tile scaling, config errors.

The table was computed with transformers 5.23.0's PIL processors and a transcription of the
original algorithms; every strategy column is checked as rows x cols (+1) and visual tokens.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from harness.preprocess import STRATEGIES, build_strategy
from harness.preprocess._references import llava_num_tokens, phi3_num_tokens
from harness.registry import UnknownChoiceError

# W x H: IVL dyn max12, IVL dyn max6, Phi-3 hd16, Phi-3.5 hd4, LLaVA-NeXT  ("rows x cols" [+1] = tokens)
# (CLIP crop is 576 and IVL squash 256 for every size.)
TABLE = """
336x336 | 1x1 = 256 | 1x1 = 256 | 4x4+1 = 2509 | 2x2+1 = 757 | 1x2+1 = 1176
448x448 | 1x1 = 256 | 1x1 = 256 | 4x4+1 = 2509 | 2x2+1 = 757 | 2x2+1 = 2928
808x1100 | 4x3+1 = 3328 | 3x2+1 = 1792 | 4x3+1 = 1933 | 2x2+1 = 757 | 2x2+1 = 2352
1100x808 | 3x4+1 = 3328 | 2x3+1 = 1792 | 3x4+1 = 1921 | 2x2+1 = 757 | 2x2+1 = 2340
1920x1080 | 2x4+1 = 2304 | 1x2+1 = 768 | 3x5+1 = 2353 | 2x2+1 = 757 | 2x2+1 = 1948
1080x1920 | 4x2+1 = 2304 | 2x1+1 = 768 | 5x3+1 = 2377 | 2x2+1 = 757 | 2x2+1 = 1968
500x2000 | 4x1+1 = 1280 | 4x1+1 = 1280 | 8x2+1 = 2557 | 4x1+1 = 781 | 3x1+1 = 1944
2000x500 | 1x4+1 = 1280 | 1x4+1 = 1280 | 2x8+1 = 2485 | 1x4+1 = 745 | 1x3+1 = 1890
100x100 | 1x1 = 256 | 1x1 = 256 | 4x4+1 = 2509 | 2x2+1 = 757 | 1x2+1 = 1176
1x1 | 1x1 = 256 | 1x1 = 256 | 4x4+1 = 2509 | 2x2+1 = 757 | 1x2+1 = 1176
13x4000 | 12x1+1 = 3328 | 6x1+1 = 1792 | 16x1+1 = 2653 | 4x1+1 = 781 | 3x1+1 = 648
4000x13 | 1x12+1 = 3328 | 1x6+1 = 1792 | 1x16+1 = 2473 | 1x4+1 = 745 | 1x3+1 = 576
640x480 | 3x4+1 = 3328 | 2x3+1 = 1792 | 3x4+1 = 1921 | 2x2+1 = 757 | 2x2+1 = 2340
1024x768 | 3x4+1 = 3328 | 2x3+1 = 1792 | 3x4+1 = 1921 | 2x2+1 = 757 | 2x2+1 = 2340
3000x3000 | 3x3+1 = 2560 | 2x2+1 = 1280 | 4x4+1 = 2509 | 2x2+1 = 757 | 2x2+1 = 2928
337x336 | 1x1 = 256 | 1x1 = 256 | 4x4+1 = 2509 | 2x2+1 = 757 | 1x2+1 = 1176
671x336 | 1x2+1 = 768 | 1x2+1 = 768 | 3x5+1 = 2353 | 1x2+1 = 457 | 1x2+1 = 1752
1344x1344 | 3x3+1 = 2560 | 2x2+1 = 1280 | 4x4+1 = 2509 | 2x2+1 = 757 | 2x2+1 = 2928
100x200 | 2x1+1 = 768 | 2x1+1 = 768 | 5x3+1 = 2377 | 2x1+1 = 469 | 1x2+1 = 888
200x100 | 1x2+1 = 768 | 1x2+1 = 768 | 3x5+1 = 2353 | 1x2+1 = 457 | 1x2+1 = 1752
704x396 | 1x2+1 = 768 | 1x2+1 = 768 | 3x5+1 = 2353 | 2x2+1 = 757 | 2x2+1 = 1948
"""
COLUMNS = {
    "ivl_max12": ("internvl_dynamic", {"max_tiles": 12}),
    "ivl_max6": ("internvl_dynamic", {"max_tiles": 6}),
    "phi3_hd16": ("phi3_hd", {"num_crops": 16}),
    "phi35_hd4": ("phi3_hd", {"num_crops": 4}),
    "llava_next": ("llava_anyres", {}),
}


def _parse(cell: str) -> tuple[int, int, bool, int]:
    grid, tokens = (p.strip() for p in cell.split("="))
    has_global = grid.endswith("+1")
    rows, cols = (int(v) for v in grid.removesuffix("+1").split("x"))
    return rows, cols, has_global, int(tokens)


ROWS = []
for line in TABLE.strip().splitlines():
    size, *cells = (c.strip() for c in line.split("|"))
    w, h = (int(v) for v in size.split("x"))
    for column, cell in zip(COLUMNS, cells, strict=True):
        ROWS.append(pytest.param(w, h, column, _parse(cell), id=f"{size}-{column}"))
SIZES = sorted({(p.values[0], p.values[1]) for p in ROWS})


def _tokens(column: str, layout) -> int:
    rows, cols = layout.grid
    if column.startswith("ivl"):
        return 256 * layout.n_views
    if column.startswith("phi3"):
        return phi3_num_tokens(rows, cols)
    return llava_num_tokens(*layout.original_size, rows, cols)


@pytest.mark.parametrize(("width", "height", "column", "expected"), ROWS)
def test_reference_table(width: int, height: int, column: str, expected: tuple[int, int, bool, int]) -> None:
    name, params = COLUMNS[column]
    layout = build_strategy(name, **params).plan(width, height)
    rows, cols, has_global, tokens = expected
    assert layout.grid == (rows, cols)
    assert layout.has_global == has_global
    assert layout.n_views == rows * cols + has_global
    assert _tokens(column, layout) == tokens


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_single_view_strategies_on_table_sizes(width: int, height: int) -> None:
    for name, tile in (("center_crop", 336), ("resize", 448)):
        layout = build_strategy(name, tile_size=tile).plan(width, height)
        assert (layout.grid, layout.n_views, layout.executed_views, layout.canvas_size) == ((1, 1), 1, 1, (tile, tile))


def test_worked_examples_of_the_spec() -> None:
    # CLIP: 1920x1080 -> 597x336 (truncation); 671x336 crop offset 167 (floor, transformers).
    clip = build_strategy("center_crop")
    assert clip.plan(1920, 1080).resized_size == (597, 336)
    assert clip.crop_offset(clip.plan(671, 336)) == (167, 0)
    # InternVL tie rule with max 6: aspect 1.25 -> 3x2 (cols x rows) when large, 1x1 when small.
    ivl6 = build_strategy("internvl_dynamic", max_tiles=6)
    assert ivl6.plan(1250, 1000).grid == (2, 3)
    assert ivl6.plan(500, 400).grid == (1, 1)
    assert build_strategy("internvl_dynamic").plan(500, 400).grid == (3, 4)
    # Phi-3: 4000x13 -> 5376x17 padded to 5376x336; global first; zero crops up to 17.
    phi = build_strategy("phi3_hd").plan(4000, 13)
    assert (phi.resized_size, phi.canvas_size, phi.content_box) == ((5376, 17), (5376, 336), (0, 159, 5376, 176))
    assert (phi.global_position, phi.n_views, phi.executed_views) == ("first", 17, 17)
    assert build_strategy("phi3_hd", pad_to_max_crops=False).plan(336, 672).executed_views == 1 + 5 * 3
    # Portrait Phi-3 images are padded left/right.
    tall = build_strategy("phi3_hd").plan(13, 4000)
    assert (tall.canvas_size, tall.content_box) == ((336, 5376), (159, 0, 176, 5376))
    # LLaVA: pinpoint orientation; 100x200 is 888 tokens in transformers, 1776 in original LLaVA.
    hw, wh = build_strategy("llava_anyres"), build_strategy("llava_anyres", pinpoint_order="wh")
    assert hw.plan(100, 200).grid == (1, 2) and wh.plan(100, 200).grid == (2, 1)
    assert llava_num_tokens(100, 200, *wh.plan(100, 200).grid) == 1776
    lay = hw.plan(1920, 1080)
    assert (lay.canvas_size, lay.resized_size, lay.content_box) == ((672, 672), (672, 378), (0, 147, 672, 525))


def test_tile_size_scales_every_algorithm() -> None:
    ivl = build_strategy("internvl_dynamic", tile_size=336).plan(1920, 1080)
    assert (ivl.grid, ivl.canvas_size) == ((2, 4), (1344, 672))
    llava = build_strategy("llava_anyres", tile_size=448).plan(1920, 1080)
    assert (llava.grid, llava.canvas_size) == ((2, 2), (896, 896))
    phi = build_strategy("phi3_hd", tile_size=448).plan(1920, 1080)
    assert phi.grid == (3, 5) and phi.canvas_size == (5 * 448, 3 * 448)
    crop = build_strategy("center_crop", tile_size=448).plan(1920, 1080)
    assert crop.resized_size == (796, 448)
    # The tie rule's area threshold scales with the tile: 448x448 is 2x2 with 224 tiles, 1x1 with 448.
    assert build_strategy("internvl_dynamic", tile_size=224, max_tiles=16).plan(448, 448).grid == (2, 2)
    assert build_strategy("internvl_dynamic", tile_size=448, max_tiles=16).plan(448, 448).grid == (1, 1)


def _check_views(strategy, image: Image.Image) -> None:
    views = strategy.apply(image)
    layout = strategy.plan(*image.size)
    s = strategy.tile_size
    assert views.layout == layout
    assert tuple(views.pixel_values.shape) == (layout.executed_views, 3, s, s)
    assert views.pixel_values.dtype.is_floating_point
    assert layout.n_views == layout.n_tiles + layout.has_global
    cw, ch = layout.canvas_size
    left, top, right, bottom = layout.content_box
    assert 0 <= left < right <= cw and 0 <= top < bottom <= ch
    if layout.executed_views > layout.n_views:  # padding crops are zeros
        assert views.pixel_values[layout.n_views :].abs().max() == 0


@pytest.mark.parametrize("name", [n for n in STRATEGIES.names() if not STRATEGIES.get(n).variable_size])
def test_plan_and_apply_agree_on_many_sizes(name: str) -> None:
    rng = random.Random(name)
    sizes = [(1, 1), (2, 700), (700, 2), (336, 336), (448, 448), (672, 336), (896, 448)]
    sizes += [(rng.randint(1, 1200), rng.randint(1, 1200)) for _ in range(12)]
    for tile in (336, 224):
        strategy = build_strategy(name, tile_size=tile)
        for w, h in sizes:
            _check_views(strategy, Image.new("RGB", (w, h), (w % 256, h % 256, 7)))


def test_plan_is_consistent_on_a_sweep() -> None:
    """Geometry invariants over 20,000 sizes (plan only, no pixels)."""
    rng = random.Random(0)
    strategies = [build_strategy(n) for n in STRATEGIES.names()] + [build_strategy("phi3_hd", num_crops=4)]
    for _ in range(4000):
        w, h = rng.randint(1, 5000), rng.randint(1, 5000)
        for st in strategies:
            if st.name == "qwen_native" and max(w, h) / min(w, h) > 200:  # refused, as Qwen2-VL refuses it
                with pytest.raises(ValueError, match="aspect ratio"):
                    st.plan(w, h)
                continue
            lay = st.plan(w, h)
            s = st.tile_size
            rows, cols = lay.grid
            if st.name in ("internvl_dynamic", "phi3_hd", "llava_anyres", "llava_onevision"):
                assert lay.canvas_size == (cols * s, rows * s)
            if st.name == "internvl_dynamic":
                assert st.min_tiles <= rows * cols <= st.max_tiles
            if st.name == "phi3_hd":
                assert rows * cols <= st.num_crops and lay.executed_views == st.num_crops + 1
                assert (rows >= cols) == (h > w) or rows == cols or w == h
            if st.name == "qwen_native":
                vw, vh = lay.view_wh
                assert vw % 28 == 0 and vh % 28 == 0 and st.min_pixels <= vw * vh <= st.max_pixels
            left, top, right, bottom = lay.content_box
            assert (right - left, bottom - top) == (lay.resized_size if st.name != "center_crop" else (s, s))


def test_build_strategy_errors_name_the_choices() -> None:
    with pytest.raises(UnknownChoiceError, match="center_crop"):
        build_strategy("nope")
    with pytest.raises(UnknownChoiceError, match="max_tiles"):
        build_strategy("internvl_dynamic", max_tile=6)
    with pytest.raises(ValueError, match="pinpoint_order"):
        build_strategy("llava_anyres", pinpoint_order="xy")
    with pytest.raises(ValueError, match="multiples of 336"):
        build_strategy("llava_anyres", grid_pinpoints=[[300, 600]])
    with pytest.raises(ValueError, match="min_tiles"):
        build_strategy("internvl_dynamic", min_tiles=5, max_tiles=4)
    with pytest.raises(ValueError, match="tile_size"):
        build_strategy("resize", tile_size=0)
    with pytest.raises(ValueError, match="positive"):
        build_strategy("resize").plan(0, 10)


def test_defaults_and_none_params() -> None:
    ivl = build_strategy("internvl_dynamic", tile_size=None, mean=None, std=None)
    assert (ivl.tile_size, ivl.mean, ivl.max_tiles, ivl.thumbnail) == (448, (0.485, 0.456, 0.406), 12, True)
    phi = build_strategy("phi3_hd")
    assert (phi.tile_size, phi.num_crops, phi.pad_to_max_crops) == (336, 16, True)
    assert build_strategy("llava_anyres").params()["grid_pinpoints"][0] == [336, 672]
    no_thumb = build_strategy("internvl_dynamic", thumbnail=False).plan(1920, 1080)
    assert (no_thumb.n_views, no_thumb.has_global, no_thumb.global_position) == (8, False, None)
    one = build_strategy("internvl_dynamic").plan(448, 448)
    assert (one.n_views, one.has_global) == (1, False)


def test_every_config_builds() -> None:
    """Every preprocess option, as Hydra composes it (with the keys of its `_base`), builds."""
    from harness.config import choices, compose

    names = set()
    for choice in choices("preprocess"):
        cfg = compose([f"preprocess={choice}"])["preprocess"]
        assert {"tile_size", "mean", "std", "exif_transpose", "backend", "device"} <= set(cfg) or choice == "native"
        name = cfg.pop("name")
        names.add(name)
        if name != "native":
            strategy = build_strategy(name, **cfg)
            assert strategy.plan(640, 480).n_views >= 1
    assert set(STRATEGIES.names()) <= names


def test_normalisation_matches_the_closed_form() -> None:
    strategy = build_strategy("resize", tile_size=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = Image.fromarray(np.full((4, 4, 3), (255, 0, 51), dtype=np.uint8))
    px = strategy.apply(image).pixel_values[0]
    assert np.allclose(px[:, 0, 0].numpy(), [(1 - 0.5) / 0.5, (0 - 0.25) / 0.25, 0.2], atol=1e-6)


def test_plan_geometry_equals_the_reference_functions_on_random_sizes() -> None:
    """Grids and resize sizes equal transformers' own geometry functions (and the Phi-3 transcription)."""
    from transformers.image_processing_utils import get_patch_output_size, select_best_resolution
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    rng = random.Random(1)
    sizes = [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(1000)]
    sizes += [(rng.randint(1, 40), rng.randint(1, 8000)) for _ in range(200)]
    sizes += [(5 * k, 4 * k) for k in range(1, 200)]  # aspect 1.25: exact ties in the InternVL rule
    ivl12, ivl6 = build_strategy("internvl_dynamic"), build_strategy("internvl_dynamic", max_tiles=6)
    llava = build_strategy("llava_anyres")
    pinpoints = [list(p) for p in llava.grid_pinpoints]
    for w, h in sizes:
        for strategy, max_tiles in ((ivl12, 12), (ivl6, 6)):
            cols, rows = get_optimal_tiled_canvas((h, w), (448, 448), 1, max_tiles)
            assert strategy.plan(w, h).grid == (rows, cols), (w, h, max_tiles)
        best_h, best_w = select_best_resolution((h, w), pinpoints)
        lay = llava.plan(w, h)
        assert lay.canvas_size == (best_w, best_h), (w, h)
        image_chw = np.empty((3, h, w), dtype=np.uint8)
        new_h, new_w = get_patch_output_size(image_chw, (best_h, best_w), input_data_format="channels_first")
        assert lay.resized_size == (new_w, new_h), (w, h)


def test_phi3_height_that_truncates_to_zero_is_clamped() -> None:
    """The original `int(new_w / ratio)` gives 0 for aspect > new_w and then fails in resize;
    the harness clamps the resized height to 1 px instead of failing."""
    strategy = build_strategy("phi3_hd", num_crops=4)
    layout = strategy.plan(2400, 1)
    assert (layout.resized_size, layout.canvas_size, layout.grid) == ((1344, 1), (1344, 336), (1, 4))
    assert build_strategy("phi3_hd", num_crops=4).apply(Image.new("RGB", (1, 2400))).layout.grid == (4, 1)
