"""The token atlas: grid geometry, token counts that agree with the encoder's own count, the
table, and its speed over 10^5 sizes."""

from __future__ import annotations

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
        assert atlas.count_tokens("clip_vit_l14_336", layout) == encoder.num_tokens(layout) == 576
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
    assert atlas.main(["--n-sizes", "20", "--out", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "token_atlas.parquet")
    assert len(table) == 20 and table["aspect_ratio"].is_monotonic_increasing
