"""Reduction x connector rules: analytic counts equal forward lengths on many layouts for every
accepted pairing; `none` through the rules reproduces the connectors; refusals name the reason."""

from __future__ import annotations

import pytest
import torch

from harness.connectors import CONNECTORS, build_connector, connector_class
from harness.connectors.internvl import pixel_shuffle
from harness.preprocess import build_strategy
from harness.reduce import build_reducer
from harness.reduce.connect import reduce_image
from tests.helpers.reduce import METHODS, PHI3_REASON

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [(336, 336), (1920, 1080), (13, 400), (808, 1100), (4000, 13), (640, 480)]
PAIRINGS = [  # connector, tile, strategies
    ("flat", 336, ["center_crop", "resize", "llava_anyres", "internvl_dynamic"]),
    ("llava_next", 336, ["llava_anyres"]),
    ("internvl", 448, ["internvl_dynamic", "resize"]),
]
C = 8


def check_pairing(reducer, connector: str, grid_side: int) -> None:
    connector_class(connector).check_reduction(reducer, grid_side)


def test_every_connector_that_takes_reduced_tokens_is_tested() -> None:
    """The registry's own declarations: a connector that accepts reductions must be in PAIRINGS."""
    accepting = {n for n in CONNECTORS.names() if connector_class(n).no_reduction is None}
    assert accepting == {connector for connector, _, _ in PAIRINGS}


def scores_for(v: int, p: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    attn = torch.rand(v, p, generator=g) ** 8
    return {"cls_attn": attn, "keys": torch.randn(v, p, 4, generator=g),
            "pm_attn": torch.softmax(attn * 20, -1), "pm_keys": torch.randn(v, p, C, generator=g)}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), METHODS)
@pytest.mark.parametrize(("connector", "tile", "strategies"), PAIRINGS)
@torch.no_grad()
def test_counts_equal_forward(name, params, connector, tile, strategies) -> None:
    reducer = build_reducer(name, **params)
    g = tile // 14
    check_pairing(reducer, connector, g)
    conn = build_connector(connector, in_dim=C, out_dim=6, grid_side=g).eval()
    for strategy in strategies:
        s = build_strategy(strategy, tile_size=tile)
        for i, (w, h) in enumerate(SIZES):
            layout = s.plan(w, h)
            v = layout.executed_views
            feats = torch.randn(v, 1 + g * g, C, generator=torch.Generator().manual_seed(i))
            out = reduce_image(reducer, conn, feats, scores_for(v, g * g, i), layout)
            n = conn.reduced_tokens(reducer, layout, g)
            lo, hi = conn.reduced_range(reducer, layout, g)
            assert out.tokens.shape[1] == (C if connector == "flat" else 6)
            assert sum(out.view_counts) == out.tokens.shape[0]
            assert out.pooled.shape == (C,)
            if n is None:
                assert lo <= out.tokens.shape[0] <= hi
            else:
                assert out.tokens.shape[0] == n == lo == hi, (strategy, w, h)


@torch.no_grad()
def test_none_through_rules_reproduces_connectors() -> None:
    none = build_reducer("none")
    layout = build_strategy("internvl_dynamic", tile_size=448).plan(1920, 1080)
    v = layout.executed_views
    feats = torch.randn(v, 1 + 32 * 32, C)
    conn = build_connector("internvl", in_dim=C, out_dim=6, grid_side=32).eval()
    out = reduce_image(none, conn, feats, {}, layout)
    torch.testing.assert_close(out.tokens, conn(feats[:, 1:], layout))
    torch.testing.assert_close(out.pooled, feats[: layout.n_views, 1:].mean(dim=(0, 1)))
    flat = build_connector("flat", in_dim=C, out_dim=6, grid_side=32)
    torch.testing.assert_close(reduce_image(none, flat, feats, {}, layout).tokens, flat(feats[:, 1:], layout))
    layout = build_strategy("llava_anyres", tile_size=336).plan(336, 336)
    feats = torch.randn(layout.executed_views, 1 + 24 * 24, C)
    conn = build_connector("llava_next", in_dim=C, out_dim=6, grid_side=24).eval()
    out = reduce_image(none, conn, feats, {}, layout)
    torch.testing.assert_close(out.tokens[:576], conn(feats[:, 1:], layout)[:576])  # the base view


@torch.no_grad()
def test_internvl_scores_pooled_over_merged_blocks() -> None:
    """cls_topk keep=1 on the merged grid keeps the 2x2 block with the largest summed score."""
    layout = build_strategy("resize", tile_size=448).plan(448, 448)
    feats = torch.randn(1, 1 + 32 * 32, C)
    attn = torch.zeros(1, 32 * 32)
    attn[0, 0] = 0.9  # one strong patch in block (0, 0)
    for r, c in ((10, 20), (10, 21), (11, 20), (11, 21)):  # four medium patches filling block (5, 10)
        attn[0, r * 32 + c] = 0.3
    conn = build_connector("internvl", in_dim=C, out_dim=6, grid_side=32).eval()
    out = reduce_image(build_reducer("cls_topk", keep=1), conn, feats, {"cls_attn": attn}, layout)
    merged = pixel_shuffle(feats[:, 1:].reshape(1, 32, 32, C)).reshape(1, 256, 4 * C)
    expect = conn.linear_2(conn.act(conn.linear_1(conn.layer_norm(merged[0, 5 * 16 + 10]))))
    torch.testing.assert_close(out.tokens[0], expect)


def test_refusals() -> None:
    with pytest.raises(ValueError, match="connector 'phi3_hd' cannot take reduced tokens") as err:
        check_pairing(build_reducer("pool", stride=2), "phi3_hd", 24)
    assert str(err.value) == PHI3_REASON
    check_pairing(build_reducer("none"), "phi3_hd", 24)
    with pytest.raises(ValueError, match=r"reduce.keep must be in 1..256"):
        check_pairing(build_reducer("uniform", keep=300), "internvl", 32)  # 16 x 16 merged grid
    check_pairing(build_reducer("uniform", keep=300), "flat", 32)


def test_visionzip_64_per_view() -> None:
    vz = build_reducer("visionzip", dominant=54, contextual=10)
    layout = build_strategy("llava_anyres", tile_size=336).plan(1920, 1080)
    assert connector_class("llava_next").reduced_tokens(vz, layout, 24) == 64 * layout.n_views
    assert connector_class("flat").reduced_tokens(vz, build_strategy("center_crop").plan(640, 480), 24) == 64
