"""The token atlas: grid geometry, token counts that agree with the encoder's own count, the
table, and its speed over 10^5 sizes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import atlas
from harness.encoders import ENCODERS
from harness.preprocess import build_strategy
from harness.registry import UnknownChoiceError
from harness.runtime import Runtime


def test_size_grid_covers_aspects_and_sides() -> None:
    aspects, widths, heights = atlas.size_grid(32, 4096, 9)
    assert widths.shape == heights.shape == (9, 9)
    assert aspects[0] == pytest.approx(1 / 8) and aspects[-1] == pytest.approx(8) and aspects[4] == pytest.approx(1)
    assert (np.maximum(widths, heights)[4] == np.rint(np.geomspace(32, 4096, 9))).all()
    ratio = widths / heights
    assert np.allclose(ratio[:, -1], aspects, rtol=0.01)  # at 4096 px rounding is negligible


def test_count_tokens_agrees_with_the_encoder() -> None:
    """The weight-free count equals the tiny encoder's num_tokens and its forward pass."""
    encoder = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights="random", runtime=Runtime.resolve("cpu"))
    strategy = build_strategy("resize", tile_size=336)
    for w, h in ((13, 400), (1920, 1080), (336, 336)):
        layout = strategy.plan(w, h)
        assert atlas.token_counter("clip_vit_l14_336")(layout) == encoder.num_tokens(layout) == 576
    with pytest.raises(UnknownChoiceError, match="valid choices: clip_vit_l14_336"):
        atlas.token_counter("nope")


def test_build_atlas_table_and_speed(tmp_path: Path) -> None:
    spec = {"min_side": 32, "max_side": 4096, "n_sizes": 316, "encoders": ["clip_vit_l14_336", "not_merged_yet"],
            "strategies": {"resize": [{}], "not_merged_strategy": [{"x": 1}]}}
    messages: list[str] = []
    t0 = time.perf_counter()
    table = atlas.build_atlas(spec, log=messages.append)
    seconds = time.perf_counter() - t0
    assert len(table) == 316 and set(table["strategy"]) == {"resize"}
    assert (table[["tokens_min", "tokens_median", "tokens_max", "tokens_at_1024px"]] == 576).all().all()
    assert any("skip encoder not_merged_yet" in m for m in messages)
    assert any("skip strategy not_merged_strategy" in m for m in messages)
    assert seconds < 10, f"10^5 sizes took {seconds:.1f} s"


def test_atlas_command_writes_the_table(tmp_path: Path) -> None:
    """The default spec: every encoder x strategy pair its connector takes, 20 aspect rows each,
    counts from the encoders' own analytic formulas (checked against closed forms here)."""
    assert atlas.main(["--n-sizes", "20", "--out", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "token_atlas.parquet")
    groups = table.groupby(["encoder", "strategy", "strategy_params"])
    # 3 encoders x 7 strategy variants minus phi3_vision's 4 non-HD layouts (17), plus issue 15:
    # llava_onevision for the 3 (3); qwen2_5_vl_vit x 10 variants (10); siglip_so400m x 8 (not
    # qwen_native); siglip_so400m@llava_onevision x 4 layouts with a base view first
    assert (groups.size() == 20).all() and len(groups) == 17 + 3 + 10 + 8 + 4
    assert all(g["aspect_ratio"].is_monotonic_increasing for _, g in groups)
    assert not ((table["encoder"] == "phi3_vision") & table["strategy"].isin(["resize", "internvl_dynamic"])).any()
    one_view = table[table["strategy"].isin(["resize", "center_crop"])]
    per_view = {"clip_vit_l14_336": 576, "internvit_300m": 256, "qwen2_5_vl_vit": 256, "siglip_so400m": 729}
    assert (one_view["tokens_max"] == one_view["encoder"].map(per_view)).all()
    # InternVL: 256 per tile, at most max_tiles + thumbnail
    dyn = table[(table["encoder"] == "internvit_300m") & (table["strategy"] == "internvl_dynamic")]
    for params, grp in dyn.groupby("strategy_params"):
        max_tiles = json.loads(params)["max_tiles"]
        assert grp["tokens_max"].max() == 256 * (max_tiles + 1) and grp["tokens_min"].min() == 256
    # Phi-3 HD: (h*w + 1) * 144 + 1 + (h + 1) * 12 with h*w <= num_crops
    hd = table[(table["encoder"] == "phi3_vision") & (table["strategy"] == "phi3_hd")]
    possible = {(h * w + 1) * 144 + 1 + (h + 1) * 12 for h in range(1, 17) for w in range(1, 17) if h * w <= 16}
    assert set(hd["tokens_min"]) | set(hd["tokens_max"]) <= possible
