"""VisionZip and PruMerge(+) equal transcriptions of their reference forwards
(tests/references/reduce_reference.py) on a tiny random CLIP: same kept indices, same tokens (1e-6)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.encoders import ENCODERS
from harness.reduce import ViewFeatures, build_reducer
from harness.reduce.scores import compute_scores
from tests.references.reduce_reference import prumerge_reference, visionzip_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_clip(seed: int) -> CLIPVisionModel:
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                              image_size=336, patch_size=14, hidden_act="quick_gelu", attn_implementation="eager",
                              initializer_factor=1.0)
    return CLIPVisionModel(config).eval()


def ours(model: CLIPVisionModel, images: torch.Tensor, reducer, feature_layer: int = -2):
    out = model(pixel_values=images, output_hidden_states=True)
    hs = out.hidden_states
    scores = compute_scores(ENCODERS.get("clip_vit_l14_336").qk_recipe, model, hs, feature_layer, reducer.needs)
    feats = hs[feature_layer]
    x = ViewFeatures(patches=feats[:, 1:], cls=feats[:, 0], grid=(24, 24), **scores)
    return x, reducer.apply(x)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("dominant", "contextual"), [(54, 10), (108, 20), (191, 30), (1, 5)])
@torch.no_grad()
def test_visionzip_equals_reference(seed: int, dominant: int, contextual: int) -> None:
    model = tiny_clip(seed)
    images = torch.randn(2, 3, 336, 336, generator=torch.Generator().manual_seed(seed))
    ref_tokens, ref_indices = visionzip_reference(model, images, dominant, contextual)
    reducer = build_reducer("visionzip", dominant=dominant, contextual=contextual)
    x, tokens = ours(model, images, reducer)
    mine = reducer.dominant_indices(x.cls_attn, True) + 1
    assert torch.equal(mine, ref_indices[:, 1:])
    for b in range(2):
        assert tokens[b].shape == (dominant + contextual, 64) == ref_tokens[b].shape
        torch.testing.assert_close(tokens[b], ref_tokens[b], atol=1e-6, rtol=0)


CASES = [("prumerge", True), ("prumerge", False), ("prumerge_plus", True), ("prumerge_plus", False)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("variant", "adaptive"), CASES)
@torch.no_grad()
def test_prumerge_equals_reference(seed: int, variant: str, adaptive: bool) -> None:
    model = tiny_clip(seed)
    reducer = build_reducer("prumerge", variant=variant, adaptive=adaptive, ratio=1 / 8)
    for b in range(2):  # the reference's adaptive plus path takes one image per call
        images = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(10 * seed + b))
        ref_tokens, ref_idx = prumerge_reference(model, images, plus=variant == "prumerge_plus", if_adaptive=adaptive)
        x, tokens = ours(model, images, reducer)
        idx = reducer.kept_indices(x.pm_attn[0])
        assert len(idx) > 0
        assert torch.equal(idx, ref_idx[0])
        assert tokens[0].shape == ref_tokens[0].shape
        torch.testing.assert_close(tokens[0], ref_tokens[0], atol=1e-6, rtol=0)
        if not adaptive:
            assert tokens[0].shape[0] == reducer.count((24, 24), True)
        lo, hi = reducer.count_range((24, 24), True)
        assert lo <= tokens[0].shape[0] <= hi
