"""siglip_so400m: weights from a tiny `SiglipModel.save_pretrained` checkpoint (vision tensors only),
features equal transformers' own forward, pooled head = `SiglipModel.get_image_features`,
pixels of `resize` equal `SiglipImageProcessorPil`, 729 tokens per 384 crop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import SiglipConfig, SiglipModel
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from harness.encoders import ENCODERS
from harness.encoders.siglip import SIGLIP_TINY
from harness.preprocess import build_strategy
from harness.runtime import Runtime
from tests.helpers.images import random_image

CPU = Runtime.resolve("cpu", "float32")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SiglipModel]:
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=64,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = SiglipModel(SiglipConfig(vision_config=dict(SIGLIP_TINY), text_config=text)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    folder = tmp_path_factory.mktemp("siglip")
    model.save_pretrained(folder)
    return folder, model


def encoder(weights: str = "random", **kw):
    return ENCODERS.get("siglip_so400m")(size="tiny", weights=str(weights), runtime=CPU, **kw)


def test_features_and_head_equal_transformers(checkpoint) -> None:
    folder, peer = checkpoint
    strategy = build_strategy("resize", tile_size=384, mean=(0.5,) * 3, std=(0.5,) * 3)
    images = [random_image(500, 300), random_image(100, 700)]
    batch = [strategy.apply(im) for im in images]
    processor = SiglipImageProcessorPil(size={"height": 384, "width": 384})  # so400m-384's preprocessor config
    ref = processor(images=images, return_tensors="pt")["pixel_values"]
    assert torch.equal(torch.cat([v.pixel_values for v in batch]), ref)
    with torch.no_grad():
        hidden = peer.vision_model(pixel_values=ref, output_hidden_states=True).hidden_states[-2]
        head = peer.get_image_features(pixel_values=ref).pooler_output
    for pool, want in (("mean_patch", hidden.mean(1)), ("global_cls", head)):
        ours = encoder(folder, pool=pool)
        outputs, _ = ours.encode(batch)
        for i, out in enumerate(outputs):
            assert out.num_tokens == ours.num_tokens(batch[i].layout) == 729
            torch.testing.assert_close(out.tokens, hidden[i], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out.pooled, want[i], atol=1e-5, rtol=1e-5)


def test_vision_tensors_only_and_strict(checkpoint, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from harness.encoders.weights import WeightsError

    folder, peer = checkpoint
    ours = encoder(folder)
    want = peer.vision_model.state_dict()
    got = ours.model.backbone.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "vision_model.head.probe"}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightsError, match="missing key"):
        encoder(tmp_path)


@pytest.mark.parametrize(("strategy", "params", "views"), [
    ("resize", {}, 1), ("center_crop", {}, 1), ("internvl_dynamic", {"max_tiles": 6}, None),
    ("llava_anyres", {}, None), ("phi3_hd", {"num_crops": 4}, None),
])
def test_tiled_strategies_at_384(strategy: str, params: dict, views: int | None) -> None:
    cls = ENCODERS.get("siglip_so400m")
    layout = build_strategy(strategy, tile_size=384, **params).plan(1000, 600)
    cls.check_layout(layout)
    assert cls.count_tokens(layout) == layout.n_views * 729
    assert views is None or layout.n_views == views
    with pytest.raises(ValueError, match="384px"):
        cls.check_layout(build_strategy(strategy, **params).plan(1000, 600))  # 336 tiles
