"""siglip_so400m + llava_onevision connector == transformers `LlavaOnevisionModel.get_image_features`
(projector, base view first, unpadded grid, anyres_max_9 bilinear shrink, newlines), on a tiny
checkpoint written by `LlavaOnevisionForConditionalGeneration.save_pretrained` (26-of-27-block
tower without head, read through our key map), pixels from `LlavaOnevisionImageProcessorPil`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

from harness.encoders import ENCODERS
from harness.encoders.siglip import SIGLIP_TINY
from harness.encoders.weights import WeightsError
from harness.preprocess import build_strategy
from harness.preprocess._references import transformers_reference
from harness.runtime import Runtime
from tests.helpers.images import random_image

CPU = Runtime.resolve("cpu", "float32")
TEXT = dict(model_type="qwen2", hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=64)
# (W, H): no shrink (1x1, 1x2 grids), shrink (3x5 and 6x6 grids), a thin strip
SIZES = [(384, 384), (700, 380), (1920, 1080), (2304, 2304), (13, 4000)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LlavaOnevisionForConditionalGeneration]:
    torch.manual_seed(0)
    tower = {**SIGLIP_TINY, "num_hidden_layers": SIGLIP_TINY["num_hidden_layers"] - 1, "vision_use_head": False}
    config = LlavaOnevisionConfig(vision_config={"model_type": "siglip_vision_model", **tower}, text_config=TEXT,
                                  image_token_index=63, video_token_index=62)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    folder = tmp_path_factory.mktemp("onevision")
    model.save_pretrained(folder, max_shard_size="100KB")
    return folder, model


def encoder(weights: str, **kw):
    return ENCODERS.get("siglip_so400m")(size="tiny", weights=str(weights), runtime=CPU, **kw)


def test_tokens_equal_llava_onevision_get_image_features(checkpoint) -> None:
    folder, peer = checkpoint
    ours = encoder(folder, connector="llava_onevision", out_dim=48, batch_views=8)
    strategy = build_strategy("llava_onevision", mean=ours.mean, std=ours.std)
    reference = transformers_reference(strategy)
    images = [random_image(*s) for s in SIZES]
    batch = [strategy.apply(im) for im in images]
    outputs, _ = ours.encode(batch)
    for image, views, out in zip(images, batch, outputs, strict=True):
        pixels = reference(image)
        assert torch.equal(pixels, views.pixel_values)
        with torch.no_grad():
            (want,) = peer.model.get_image_features(
                pixel_values=pixels[None], image_sizes=torch.tensor([[image.height, image.width]]),
                vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
            ).pooler_output
        assert out.num_tokens == want.shape[0] == ours.num_tokens(views.layout), image.size
        torch.testing.assert_close(out.tokens, want, atol=1e-5, rtol=1e-5)
    counts = [o.num_tokens for o in outputs]
    assert counts[0] == 729 + 27 * 28  # 1x1 grid: base + 27 rows of 27 + newline
    assert counts[3] == 729 + 81 * 82  # 6x6 grid of 162x162 patches shrunk by 2


def test_onevision_tower_alone_and_refusals(checkpoint) -> None:
    folder, peer = checkpoint
    flat = encoder(folder, connector="flat")
    assert not hasattr(flat.model.backbone, "head")
    want = peer.model.vision_tower.state_dict()
    got = flat.model.backbone.state_dict()
    for k, v in want.items():
        assert torch.equal(got[k], v), k
    with pytest.raises(WeightsError, match="pooling head"):
        encoder(folder, connector="flat", pool="global_cls")
    with pytest.raises(WeightsError, match="feature_layer=-2"):
        encoder(folder, connector="flat", feature_layer=-1)


def test_onevision_layout_needs_base_view() -> None:
    cls = ENCODERS.get("siglip_so400m")
    with pytest.raises(ValueError, match="global/base view first"):
        cls.check_layout(build_strategy("resize", tile_size=384).plan(500, 300), "llava_onevision")
