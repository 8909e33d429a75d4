"""Encoders and connectors: exact token counts (analytic == forward), the Phi-3 HD sequence
layout, and layout checks. Layouts are built by hand from docs/preprocessing.md."""

from __future__ import annotations

import pytest
import torch

from harness.connectors import CONNECTORS, LayoutError, build_connector
from harness.connectors.llava_next import unpadded_grid
from harness.connectors.phi3_hd import Phi3HD, merge_2x2
from harness.encoders import ENCODERS
from harness.runtime import Runtime
from harness.types import Layout, Views

CPU = Runtime.resolve("cpu", "float32")


def phi3_layout(w: int, h: int, rows: int, cols: int, num_crops: int = 16) -> Layout:
    hd = (cols * 336, rows * 336)
    return Layout(strategy="phi3_hd", original_size=(w, h), tile_size=336, grid=(rows, cols), resized_size=hd,
                  canvas_size=hd, content_box=(0, 0, *hd), has_global=True, global_position="first",
                  n_views=1 + rows * cols, executed_views=num_crops + 1)


def llava_layout(w: int, h: int, rows: int, cols: int) -> Layout:
    canvas = (cols * 336, rows * 336)
    return Layout(strategy="llava_anyres", original_size=(w, h), tile_size=336, grid=(rows, cols),
                  resized_size=canvas, canvas_size=canvas, content_box=(0, 0, *canvas), has_global=True,
                  global_position="first",
                  n_views=1 + rows * cols, executed_views=1 + rows * cols)


def internvl_layout(w: int, h: int, rows: int, cols: int) -> Layout:
    n = rows * cols + (1 if rows * cols > 1 else 0)
    canvas = (cols * 448, rows * 448)
    return Layout(strategy="internvl_dynamic", original_size=(w, h), tile_size=448, grid=(rows, cols),
                  resized_size=canvas, canvas_size=canvas, content_box=(0, 0, *canvas), has_global=n > 1,
                  global_position="last" if n > 1 else None, n_views=n, executed_views=n)


def single_layout(tile: int, strategy: str = "resize") -> Layout:
    return Layout(strategy=strategy, original_size=(640, 480), tile_size=tile, grid=(1, 1), resized_size=(tile, tile),
                  canvas_size=(tile, tile), content_box=(0, 0, tile, tile), has_global=False, global_position=None,
                  n_views=1, executed_views=1)


# Reference values (preprocessing.md §3, §4, §5).
PHI3_CASES = [  # (W, H, rows, cols, tokens) with hd16
    (808, 1100, 4, 3, 1933), (1100, 808, 3, 4, 1921), (1920, 1080, 3, 5, 2353), (1080, 1920, 5, 3, 2377),
    (336, 336, 4, 4, 2509), (13, 4000, 16, 1, 2653), (4000, 13, 1, 16, 2473), (500, 2000, 8, 2, 2557),
    (2000, 500, 2, 8, 2485),
]
LLAVA_CASES = [  # (W, H, rows, cols, tokens)
    (704, 396, 2, 2, 1948), (4000, 13, 1, 3, 576), (13, 4000, 3, 1, 648), (808, 1100, 2, 2, 2352),
    (1100, 808, 2, 2, 2340), (1920, 1080, 2, 2, 1948), (1080, 1920, 2, 2, 1968), (500, 2000, 3, 1, 1944),
    (2000, 500, 1, 3, 1890), (336, 336, 1, 2, 1176), (100, 200, 1, 2, 888), (200, 100, 1, 2, 1752),
    (448, 448, 2, 2, 2928), (671, 336, 1, 2, 1752),
]
INTERNVL_CASES = [  # (W, H, rows, cols, tokens) with max 12
    (808, 1100, 4, 3, 3328), (1920, 1080, 2, 4, 2304), (448, 448, 1, 1, 256), (3000, 3000, 3, 3, 2560),
    (500, 2000, 4, 1, 1280), (13, 4000, 12, 1, 3328),
]


@pytest.mark.parametrize(("w", "h", "rows", "cols", "tokens"), PHI3_CASES)
def test_phi3_counts_match_reference_and_formula(w: int, h: int, rows: int, cols: int, tokens: int) -> None:
    layout = phi3_layout(w, h, rows, cols)
    assert ENCODERS.get("phi3_vision").count_tokens(layout) == tokens
    assert tokens == (rows * cols + 1) * 144 + 1 + (rows + 1) * 12


@pytest.mark.parametrize(("w", "h", "rows", "cols", "tokens"), LLAVA_CASES)
def test_llava_next_counts_match_reference(w: int, h: int, rows: int, cols: int, tokens: int) -> None:
    assert ENCODERS.get("clip_vit_l14_336").count_tokens(llava_layout(w, h, rows, cols), "llava_next") == tokens


def test_llava_unpad_uses_hf_rounding() -> None:
    # 396 * (48/704) evaluates to 26.999...: HF rounds to 27 and keeps 48 - 2 * 10 = 28 rows (1948 tokens);
    # original LLaVA's int() gives 26 and keeps 26 rows (1850 tokens).
    assert unpadded_grid(2, 2, 24, 704, 396) == (28, 48)
    assert unpadded_grid(1, 3, 24, 4000, 13) == (0, 72)


@pytest.mark.parametrize(("w", "h", "rows", "cols", "tokens"), INTERNVL_CASES)
def test_internvl_counts_match_reference(w: int, h: int, rows: int, cols: int, tokens: int) -> None:
    assert ENCODERS.get("internvit_300m").count_tokens(internvl_layout(w, h, rows, cols)) == tokens


def _layouts_for(connector: str) -> list[tuple[Layout, int]]:
    """(layout, grid side) pairs a connector accepts, across many shapes."""
    if connector in ("phi3_hd",):
        return [(phi3_layout(w, h, r, c), 24) for w, h, r, c, _ in PHI3_CASES]
    if connector == "llava_next":
        return [(llava_layout(w, h, r, c), 24) for w, h, r, c, _ in LLAVA_CASES]
    if connector == "llava_onevision":  # 384 tiles, 27x27 patches; small and shrunk (anyres_max_9) grids
        from harness.preprocess import build_strategy

        onevision = build_strategy("llava_onevision")
        return [(onevision.plan(w, h), 27) for w, h in [(384, 384), (704, 396), (1920, 1080), (2304, 2304), (13, 4000)]]
    if connector == "qwen_merger":  # merged tokens: (448/28)^2 = 16^2 per 448 tile
        return [(internvl_layout(w, h, r, c), 16) for w, h, r, c, _ in INTERNVL_CASES]
    out = [(internvl_layout(w, h, r, c), 32) for w, h, r, c, _ in INTERNVL_CASES]
    out += [(single_layout(336), 24), (phi3_layout(808, 1100, 4, 3), 24), (llava_layout(704, 396, 2, 2), 24)]
    return out


@pytest.mark.parametrize("name", CONNECTORS.names())
def test_connector_forward_length_equals_num_tokens(name: str) -> None:
    torch.manual_seed(0)
    cls = CONNECTORS.get(name)
    for layout, g in _layouts_for(name):
        conn = build_connector(name, in_dim=8, out_dim=12, grid_side=g).eval()
        feats = torch.randn(layout.executed_views, g * g, 8)
        with torch.no_grad():
            out = conn(feats, layout)
        assert out.shape == (cls.num_tokens(layout, g), cls.output_dim(8, 12)), (name, layout)


def test_phi3_hd_sequence_layout_pins_separator_positions() -> None:
    """sub_GN after every row (sub grid and global), glb_GN between them, padding crops ignored,
    2x2 merge order as Phi-3's reshape_hd_patches_2x2merge."""
    c = 2
    conn = Phi3HD(in_dim=c, out_dim=4 * c, grid_side=24, projection="linear")
    with torch.no_grad():
        conn.img_projection.weight.copy_(torch.eye(4 * c))
        conn.img_projection.bias.zero_()
        conn.sub_GN.fill_(1e6)
        conn.glb_GN.fill_(-1e6)
    rows, cols, m = 2, 3, 12
    layout = phi3_layout(1000, 700, rows, cols)
    v = layout.executed_views
    # feature value = 1000 * view + patch index (channel 0), and its negative (channel 1)
    base = (torch.arange(v)[:, None] * 1000 + torch.arange(576)[None, :]).float()
    feats = torch.stack([base, -base], dim=-1)
    with torch.no_grad():
        out = conn(feats, layout)
    assert out.shape[0] == Phi3HD.num_tokens(layout, 24) == rows * m * (cols * m + 1) + 1 + m * (m + 1)
    is_sub = (out == 1e6).all(dim=1)
    is_glb = (out == -1e6).all(dim=1)
    width = cols * m + 1
    n_sub = rows * m * width
    expected_sub = [r * width + cols * m for r in range(rows * m)] + [n_sub + 1 + r * 13 + 12 for r in range(m)]
    assert is_sub.nonzero().flatten().tolist() == expected_sub
    assert is_glb.nonzero().flatten().tolist() == [n_sub]
    # sub-image token at merged (R, C): crop (R//12, C//12), its 2x2 patch block in order (0,0),(0,1),(1,0),(1,1)
    for big_r, big_c in [(0, 0), (5, 17), (23, 35), (13, 2)]:
        token = out[big_r * width + big_c]
        view = 1 + (big_r // m) * cols + big_c // m
        r, cc = big_r % m, big_c % m
        patches = [(2 * r + i) * 24 + 2 * cc + j for i in (0, 1) for j in (0, 1)]
        want = torch.tensor([[1000 * view + p, -(1000 * view + p)] for p in patches], dtype=torch.float).flatten()
        assert torch.equal(token, want)
    # global view (view 0) comes after glb_GN; its first token is patches 0, 1, 24, 25
    assert torch.equal(out[n_sub + 1], torch.tensor([0, 0, 1, -1, 24, -24, 25, -25], dtype=torch.float))
    # padding crops (views 7..16) are ignored
    feats2 = feats.clone()
    feats2[1 + rows * cols :] = 123.0
    with torch.no_grad():
        assert torch.equal(conn(feats2, layout), out)
    # glb_sub: global (12 x 13), glb_GN, then sub-images
    conn.hd_transform_order = "glb_sub"
    with torch.no_grad():
        out2 = conn(feats, layout)
    assert (out2[m * 13] == -1e6).all()
    assert torch.equal(out2[: m * 13], out[n_sub + 1 :])
    assert torch.equal(out2[m * 13 + 1 :], out[:n_sub])


def test_merge_2x2_matches_phi3_reference_reshape() -> None:
    feats = torch.randn(6, 576, 3)
    ref = (
        feats.reshape(6, 24, 24, 3).reshape(6, 12, 2, 12, 2, 3).permute(0, 1, 3, 2, 4, 5).reshape(6, -1, 12)
        .reshape(1, 2, 3, 12, 12, -1).permute(0, 1, 3, 2, 4, 5).reshape(1, 24, 36, 12)[0]
    )
    assert torch.equal(merge_2x2(feats, 2, 3), ref)


@pytest.mark.parametrize(
    ("encoder", "connector", "needs"),
    [("phi3_vision", None, "phi3_hd"), ("clip_vit_l14_336", "llava_next", "llava_anyres")],
)
def test_pairing_without_global_view_fails_naming_the_strategy(encoder: str, connector: str | None, needs: str) -> None:
    with pytest.raises(LayoutError, match=needs):
        ENCODERS.get(encoder).check_layout(single_layout(336), connector)


def test_tile_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="448px"):
        ENCODERS.get("internvit_300m").check_layout(single_layout(336))


def test_unknown_options_name_valid_choices() -> None:
    cls = ENCODERS.get("clip_vit_l14_336")
    with pytest.raises(ValueError, match="flat, internvl, llava_next, llava_onevision, phi3_hd, qwen_merger"):
        cls.check_options(connector="nope")
    with pytest.raises(ValueError, match="mean_patch, global_cls"):
        cls.check_options(pool="cls")
    with pytest.raises(ValueError, match="sdpa, eager"):
        cls.check_options(attn="flash")
    with pytest.raises(ValueError, match="tiny has no pretrained"):
        cls.check_options(size="tiny", weights="pretrained")


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_encoder_declares_its_backbone_as_data(name: str) -> None:
    """config_class + model_class + presets build the backbone; `tiny` keeps the tile and patch
    size (same token counts); `num_layers` and the query/key recipe (when declared) match the model."""
    cls = ENCODERS.get(name)
    assert {"full", "tiny"} <= set(cls.presets)
    for key in ("patch_size", "image_size"):
        if key in cls.presets["full"]:
            assert cls.presets["tiny"][key] == cls.presets["full"][key]
    enc = cls(size="tiny", weights="random", runtime=CPU)
    backbone = enc.model.backbone
    assert isinstance(backbone, cls.model_class) and isinstance(backbone.config, cls.config_class)
    blocks = [m for m in backbone.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == cls.num_layers("tiny")]
    assert blocks, f"{name}: no layer list of {cls.num_layers('tiny')} blocks"
    if cls.qk_recipe is not None:
        assert len(cls.qk_recipe.layer_list(backbone)) == cls.num_layers("tiny")
    else:
        assert cls.no_reduction


ENCODE_CASES = [
    ("clip_vit_l14_336", None, [single_layout(336, "center_crop"), phi3_layout(2000, 500, 1, 4, num_crops=6)]),
    ("clip_vit_l14_336", "llava_next", [llava_layout(704, 396, 2, 2), llava_layout(13, 4000, 3, 1)]),
    ("phi3_vision", None, [phi3_layout(808, 1100, 2, 2, num_crops=4), phi3_layout(4000, 13, 1, 4, num_crops=4)]),
    ("internvit_300m", None, [internvl_layout(1920, 1080, 2, 4), internvl_layout(448, 448, 1, 1)]),
]


@pytest.mark.parametrize(("name", "connector", "layouts"), ENCODE_CASES)
def test_encode_batches_images_and_counts_match(name: str, connector: str | None, layouts: list[Layout]) -> None:
    """The full path (all crops of several images in few backbone calls) gives num_tokens
    tokens per image; batching does not change the values."""
    cls = ENCODERS.get(name)
    enc = cls(size="tiny", weights="random", runtime=CPU, batch_views=7, connector=connector, attn="eager")
    s = cls.tile_size
    torch.manual_seed(1)
    batch = [Views(torch.randn(lay.executed_views, 3, s, s), lay) for lay in layouts]
    outputs, stages = enc.encode(batch)
    assert set(stages) == {"h2d", "backbone", "connector"}
    for views, out in zip(batch, outputs, strict=True):
        assert out.num_tokens == enc.num_tokens(views.layout) == cls.count_tokens(views.layout, connector)
        assert out.pooled.ndim == 1 and torch.isfinite(out.tokens).all()
    alone, _ = enc.encode(batch[-1:])
    torch.testing.assert_close(alone[0].tokens, outputs[-1].tokens, atol=1e-4, rtol=1e-4)


def test_attn_sdpa_and_eager_agree_and_pool_modes() -> None:
    cls = ENCODERS.get("clip_vit_l14_336")
    layout = llava_layout(704, 396, 2, 2)
    views = Views(torch.randn(layout.executed_views, 3, 336, 336), layout)
    outs = {}
    for attn in ("sdpa", "eager"):
        enc = cls(size="tiny", weights="random", runtime=CPU, attn=attn, pool="global_cls", seed=3)
        outs[attn] = enc.encode([views])[0][0]
    torch.testing.assert_close(outs["sdpa"].tokens, outs["eager"].tokens, atol=1e-4, rtol=1e-4)
    # global_cls: the CLS of the global view (first), from the feature layer
    feats = enc.run_backbone(views.pixel_values)
    torch.testing.assert_close(outs["eager"].pooled, feats[0, 0], atol=1e-4, rtol=1e-4)
    enc.pool_mode = "mean_patch"
    torch.testing.assert_close(enc.pool(feats, layout), feats[:, 1:].mean(dim=(0, 1)))


def test_bad_pairing_fails_in_prepare_job_before_any_model() -> None:
    from harness.config import ConfigError, compose
    from harness.pipeline.job import prepare_job

    overrides = ["encoder=phi3_vision", "encoder.size=tiny", "encoder.weights=random", "preprocess=resize"]
    with pytest.raises(ConfigError, match="strategy phi3_hd"):
        prepare_job(compose(overrides))
    job = prepare_job(compose([*overrides, "encoder.connector=flat", "attn=eager"]))
    assert job.encoder_kwargs["connector"] == "flat" and job.encoder_kwargs["attn"] == "eager"


def test_global_cls_pool_follows_global_position() -> None:
    from types import SimpleNamespace

    from harness.encoders.base import Encoder

    feats = torch.randn(4, 5, 3)  # [views, 1 + patches, C], CLS first; view 3 is a padding crop
    pool = SimpleNamespace(pool_mode="global_cls")
    last = Layout(strategy="internvl_dynamic", original_size=(896, 448), tile_size=448, grid=(1, 2),
                  resized_size=(896, 448), canvas_size=(896, 448), content_box=(0, 0, 896, 448), has_global=True,
                  global_position="last", n_views=3, executed_views=3)
    assert torch.equal(Encoder.pool(pool, feats, last), feats[2, 0])
    assert torch.equal(Encoder.pool(pool, feats, phi3_layout(700, 336, 1, 2, num_crops=2)), feats[0, 0])
    assert torch.equal(Encoder.pool(pool, feats, single_layout(448)), feats[0, 0])
    pool.pool_mode = "mean_patch"
    torch.testing.assert_close(Encoder.pool(pool, feats, last), feats[:3, 1:].mean(dim=(0, 1)))


@pytest.mark.parametrize(("n_crops", "batch_views", "calls"), [
    (34, 32, [17, 17]), (32, 32, [32]), (33, 8, [7, 7, 7, 6, 6]), (5, 8, [5]), (1, 1, [1]),
])
def test_backbone_calls_are_near_equal_and_within_batch_views(n_crops: int, batch_views: int,
                                                              calls: list[int]) -> None:
    """ceil(n / batch_views) backbone calls of near-equal size: a 34-crop batch at 32 runs as
    17 + 17, not 32 + a 2-crop tail (measured slower on a GPU, `bench/bench_batching.py`)."""
    enc = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights="random", runtime=CPU, batch_views=batch_views)
    seen: list[int] = []
    real = enc.run_backbone

    def spy(pixels: torch.Tensor) -> torch.Tensor:
        seen.append(pixels.shape[0])
        return real(pixels)

    enc.run_backbone = spy  # type: ignore[method-assign]
    layout = single_layout(336, "resize")
    enc.encode([Views(torch.zeros(1, 3, 336, 336), layout) for _ in range(n_crops)])
    assert seen == calls and max(seen) <= batch_views
