"""Token reduction: single-layer scores equal eager attention; counts equal forward lengths;
parameter checks fail in one line (docs/token_reduction.md)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, InternVLVisionConfig, InternVLVisionModel

from harness.encoders import ENCODERS
from harness.reduce import REDUCERS, ViewFeatures, build_reducer
from harness.reduce.prumerge import max_outliers
from harness.reduce.scores import (
    cls_attention,
    compute_scores,
    mean_keys,
    scoring_layers,
    single_head_cls_attention,
)
from harness.reduce.uniform import uniform_indices
from harness.registry import UnknownChoiceError
from tests.helpers.reduce import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")


def clip_eager(image_size: int = 112) -> CLIPVisionModel:
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=image_size, patch_size=14, attn_implementation="eager")
    return CLIPVisionModel(config).eval()


def internvit_eager() -> InternVLVisionModel:
    torch.manual_seed(0)
    config = InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                  image_size=[112, 112], patch_size=[14, 14], attention_bias=True,
                                  use_qk_norm=False, use_mean_pooling=True, attn_implementation="eager")
    return InternVLVisionModel(config).eval()


CLIP_QK = ENCODERS.get("clip_vit_l14_336").qk_recipe
INTERNVIT_QK = ENCODERS.get("internvit_300m").qk_recipe


@pytest.mark.parametrize("family", ["clip", "internvit"])
@torch.no_grad()
def test_scores_equal_eager_attention(family: str) -> None:
    """Each encoder's declared q/k recipe reproduces transformers' eager attention of every layer."""
    model = clip_eager() if family == "clip" else internvit_eager()
    recipe = CLIP_QK if family == "clip" else INTERNVIT_QK
    layers = recipe.layer_list(model)
    assert len(layers) == 3
    out = model(pixel_values=torch.randn(3, 3, 112, 112), output_hidden_states=True, output_attentions=True)
    for i, layer in enumerate(layers):
        qk = recipe.qk(layer, out.hidden_states[i])
        eager = out.attentions[i]  # [N, H, T, T]
        torch.testing.assert_close(cls_attention(qk), eager[:, :, 0, 1:].sum(1), atol=1e-6, rtol=1e-5)
        # the keys: eager attention rebuilt from them reproduces every row, not only CLS
        n, t, c = qk.k.shape
        q = qk.q.reshape(n, t, 4, c // 4).transpose(1, 2)
        k = qk.k.reshape(n, t, 4, c // 4).transpose(1, 2)
        torch.testing.assert_close(torch.softmax(q @ k.transpose(-1, -2) * qk.scale, -1), eager, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(mean_keys(qk), k.mean(1)[:, 1:])
        single = torch.softmax(qk.q @ qk.k.transpose(-1, -2) * c**-0.5, -1)[:, 0, 1:]
        torch.testing.assert_close(single_head_cls_attention(qk), single, atol=1e-7, rtol=1e-6)


def test_scoring_layers() -> None:
    assert scoring_layers(24, -2) == (22, 23)  # VisionZip attentions[-2]; PruMerge layers[23]
    assert scoring_layers(24, -1) == (23, 23)  # InternViT last layer: no layer after it
    assert scoring_layers(24, 5) == (4, 5)
    with pytest.raises(ValueError, match="embeddings"):
        scoring_layers(24, 0)


def random_views(v: int, grid: tuple[int, int], has_cls: bool, seed: int = 0) -> ViewFeatures:
    g = torch.Generator().manual_seed(seed)
    p = grid[0] * grid[1]
    attn = torch.rand(v, p, generator=g) ** 8  # peaked, so adaptive PruMerge finds outliers
    return ViewFeatures(
        patches=torch.randn(v, p, 16, generator=g), grid=grid,
        cls=torch.randn(v, 16, generator=g) if has_cls else None,
        cls_attn=attn, keys=torch.randn(v, p, 8, generator=g),
        pm_attn=torch.softmax(attn * 20, -1), pm_keys=torch.randn(v, p, 16, generator=g),
    )



@pytest.mark.parametrize(("name", "params"), METHODS)
@pytest.mark.parametrize("grid", [(24, 24), (16, 16), (32, 32), (12, 12)])
@pytest.mark.parametrize("has_cls", [True, False])
@torch.no_grad()
def test_count_equals_output_length(name: str, params: dict, grid: tuple[int, int], has_cls: bool) -> None:
    reducer = build_reducer(name, **params)
    reducer.check(grid, has_cls)
    tokens = reducer.apply(random_views(3, grid, has_cls))
    assert len(tokens) == 3
    lo, hi = reducer.count_range(grid, has_cls)
    for t in tokens:
        assert t.shape[1] == 16
        if reducer.adaptive:
            assert reducer.count(grid, has_cls) is None
            assert lo <= t.shape[0] <= hi
        else:
            assert t.shape[0] == reducer.count(grid, has_cls) == lo == hi
    if reducer.keeps_grid:
        rows, cols = reducer.out_grid(grid)
        assert rows * cols == reducer.count(grid, has_cls)


def test_counts_closed_form() -> None:
    g = (24, 24)
    assert build_reducer("visionzip", dominant=54, contextual=10).count(g, True) == 64
    assert build_reducer("pool", stride=2).count(g, True) == 144
    assert build_reducer("pool", stride=5).count(g, True) == 25
    assert build_reducer("prumerge", adaptive=False).count(g, True) == 72 + 1
    assert build_reducer("prumerge", variant="prumerge_plus", adaptive=False).count(g, True) == 72 + 72 + 1
    assert build_reducer("prumerge").count_range(g, True) == (1, 145)
    assert max_outliers(576) == 144  # values above Q3 at index 431.25 of 575: indices 432..575


@torch.no_grad()
def test_pool_equals_window_means() -> None:
    x = random_views(2, (7, 5), False)
    out = build_reducer("pool", stride=3).apply(x)
    grid = x.patches.reshape(2, 7, 5, 16)
    expect = torch.stack([
        grid[:, r:r + 3, c:c + 3].mean(dim=(1, 2)) for r in range(0, 7, 3) for c in range(0, 5, 3)
    ], dim=1)
    torch.testing.assert_close(torch.stack(out), expect)


@torch.no_grad()
def test_cls_topk_keeps_highest_in_order() -> None:
    x = random_views(2, (4, 4), True)
    x.cls_attn = torch.arange(16.0).flip(0).repeat(2, 1)  # patch 0 highest
    out = build_reducer("cls_topk", keep=3).apply(x)
    torch.testing.assert_close(out[0], x.patches[0, :3])
    x.cls_attn = torch.tensor([[0, 5, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0.0]] * 2)
    out = build_reducer("cls_topk", keep=3).apply(x)
    torch.testing.assert_close(out[1], x.patches[1, [1, 4, 14]])


def test_uniform_indices() -> None:
    assert uniform_indices(576, 64).tolist() == [4 + 9 * i for i in range(64)]
    assert uniform_indices(10, 10).tolist() == list(range(10))
    assert uniform_indices(10, 3).tolist() == [1, 5, 8]


@pytest.mark.parametrize(("name", "params", "match"), [
    ("cls_topk", {"keep": 0}, r"reduce.keep must be an integer >= 1"),
    ("pool", {"stride": 1.5}, r"reduce.stride must be an integer"),
    ("visionzip", {"dominant": 0}, r"reduce.dominant must be an integer >= 1"),
    ("prumerge", {"variant": "fast"}, r"reduce.variant must be one of prumerge, prumerge_plus"),
    ("prumerge", {"ratio": 0.9}, r"reduce.ratio must be in \(0, 0.5\]"),
])
def test_bad_parameters(name: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_reducer(name, **params)


def test_bad_names_and_grids() -> None:
    with pytest.raises(UnknownChoiceError, match="valid choices: cls_topk, none, pool, prumerge, uniform, visionzip"):
        build_reducer("fastv")
    with pytest.raises(UnknownChoiceError, match="valid: keep"):
        build_reducer("uniform", stride=2)
    with pytest.raises(ValueError, match=r"reduce.keep must be in 1..256"):
        build_reducer("cls_topk", keep=300).check((16, 16), False)
    with pytest.raises(ValueError, match=r"reduce.contextual must be in 0..20"):
        build_reducer("visionzip", dominant=237, contextual=30).check((16, 16), True)
    assert sorted(REDUCERS.names()) == REDUCERS.names()


def test_identity_columns() -> None:
    ident = build_reducer("prumerge", variant="prumerge_plus").identity()
    assert ident["reduce"] == "prumerge"
    assert ident["reduce_params"] == '{"adaptive": true, "ratio": 0.125, "variant": "prumerge_plus"}'
    assert (ident["rd_variant"], ident["rd_adaptive"], ident["rd_ratio"]) == ("prumerge_plus", True, 0.125)
    assert build_reducer("none").identity() == {"reduce": "none", "reduce_params": "{}"}


@torch.no_grad()
def test_compute_scores_only_what_is_needed() -> None:
    model = clip_eager()
    out = model(pixel_values=torch.randn(1, 3, 112, 112), output_hidden_states=True)
    assert compute_scores(CLIP_QK, model, out.hidden_states, -2, ()) == {}
    s = compute_scores(CLIP_QK, model, out.hidden_states, -2, ("cls_attn",))
    assert set(s) == {"cls_attn"} and s["cls_attn"].shape == (1, 64)
    s = compute_scores(CLIP_QK, model, out.hidden_states, -2, ("pm_attn", "pm_keys"))
    assert s["pm_keys"].shape == (1, 64, 32)
