"""qwen2_5_vl_vit: peer equivalence with transformers `Qwen2_5_VLModel.get_image_features` (tiny
random config, weights through our key map from a checkpoint that transformers'
`Qwen2_5_VLForConditionalGeneration.save_pretrained` writes), packed batching, tiled views,
analytic token counts, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from harness.encoders import ENCODERS
from harness.encoders.qwen_vit import QWEN2_5_VIT_TINY
from harness.encoders.weights import WeightsError
from harness.preprocess import build_strategy
from harness.runtime import Runtime
from tests.helpers.images import random_image

CPU = Runtime.resolve("cpu", "float32")
TEXT = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=64, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                    "mrope_section": [2, 2, 2]})
SIZES = [(300, 200), (100, 100), (57, 400), (640, 480)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Qwen2_5_VLForConditionalGeneration]:
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(vision_config={**QWEN2_5_VIT_TINY, "out_hidden_size": 48}, text_config=TEXT)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    for p in model.parameters():  # biases and norms too: a wrong key map cannot pass by luck
        p.data.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("qwen25vl")
    model.save_pretrained(folder, max_shard_size="200KB")
    return folder, model


def encoder(folder: Path | str = "random", **kw):
    return ENCODERS.get("qwen2_5_vl_vit")(size="tiny", weights=str(folder), runtime=CPU, **kw)


def test_tokens_equal_get_image_features_packed(checkpoint) -> None:
    folder, peer = checkpoint
    ours = encoder(folder, batch_views=16)
    strategy = build_strategy("qwen_native", mean=ours.mean, std=ours.std, max_pixels=64 * 28 * 28)
    images = [random_image(*s) for s in SIZES]
    batch = [strategy.apply(im) for im in images]
    ref = Qwen2VLImageProcessorPil(max_pixels=64 * 28 * 28)(images=images, return_tensors="pt")
    with torch.no_grad():
        want = peer.model.get_image_features(ref["pixel_values"], ref["image_grid_thw"]).pooler_output
    outputs, _ = ours.encode(batch)
    assert [o.num_tokens for o in outputs] == [w.shape[0] for w in want] == [ours.num_tokens(v.layout) for v in batch]
    for out, w in zip(outputs, want, strict=True):
        torch.testing.assert_close(out.tokens, w, atol=1e-5, rtol=1e-5)
    # several packed calls (1 view each) give the same tokens as one call
    single, _ = encoder(folder, batch_views=1).encode(batch)
    for a, b in zip(single, outputs, strict=True):
        torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.pooled, b.pooled, atol=1e-5, rtol=1e-5)


def test_pooled_is_the_mean_of_last_block_patch_features(checkpoint) -> None:
    folder, peer = checkpoint
    ours = encoder(folder)
    views = build_strategy("qwen_native", max_pixels=64 * 28 * 28).apply(random_image(300, 200))
    (out,), _ = ours.encode([views])
    from harness.preprocess.qwen_native import patchify

    grid = torch.tensor([views.layout.patch_grid])
    with torch.no_grad():
        hidden = peer.model.visual(patchify(views.pixel_values, 14, 2, 2), grid_thw=grid).last_hidden_state
    torch.testing.assert_close(out.pooled, hidden.mean(0), atol=1e-5, rtol=1e-5)


def test_tiles_run_through_the_same_vit(checkpoint) -> None:
    folder, peer = checkpoint
    ours = encoder(folder, batch_views=3)
    strategy = build_strategy("internvl_dynamic", tile_size=448, max_tiles=4, mean=ours.mean, std=ours.std)
    views = strategy.apply(random_image(900, 500))
    (out,), _ = ours.encode([views])
    n = views.layout.n_views
    assert out.num_tokens == ours.num_tokens(views.layout) == n * 16 * 16
    from harness.preprocess.qwen_native import patchify

    grid = torch.tensor([[1, 32, 32]] * n)
    with torch.no_grad():
        want = peer.model.get_image_features(patchify(views.pixel_values, 14, 2, 2), grid).pooler_output
    torch.testing.assert_close(out.tokens, torch.cat(want), atol=1e-5, rtol=1e-5)


def test_key_map_reads_vision_tensors_only(checkpoint) -> None:
    folder, peer = checkpoint
    ours = encoder(folder)
    want = peer.model.visual.state_dict()
    got = ours.model.backbone.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_hub_names_visual_prefix_load(tmp_path: Path, checkpoint) -> None:
    """The hub's Qwen2.5-VL files name the tower `visual.*` (and the LM `model.layers.*`)."""
    from safetensors.torch import save_file

    _, peer = checkpoint
    tensors = {f"visual.{k}": v.contiguous() for k, v in peer.model.visual.state_dict().items()}
    tensors["model.embed_tokens.weight"] = torch.zeros(64, 48)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    ours = encoder(tmp_path)
    assert torch.equal(ours.model.backbone.merger.mlp[0].weight, peer.model.visual.merger.mlp[0].weight)
    del tensors["visual.merger.ln_q.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightsError, match="missing key"):
        encoder(tmp_path)


def test_refusals_name_the_reason() -> None:
    cls = ENCODERS.get("qwen2_5_vl_vit")
    with pytest.raises(ValueError, match="multiple of 28"):
        cls.check_layout(build_strategy("resize", tile_size=336 + 14).plan(640, 480))
    with pytest.raises(ValueError, match="no CLS"):
        cls.check_options(pool="global_cls")
    with pytest.raises(ValueError, match="takes connector qwen_merger"):
        cls.check_options(connector="flat")
    clip = ENCODERS.get("clip_vit_l14_336")
    with pytest.raises(ValueError, match="variable size"):
        clip.check_layout(build_strategy("qwen_native").plan(640, 480))
    with pytest.raises(ValueError, match="runs inside encoder"):
        clip.check_options(connector="qwen_merger")
    layout = build_strategy("qwen_native").plan(1920, 1080)
    assert cls.count_tokens(layout) == (layout.view_wh[0] // 28) * (layout.view_wh[1] // 28)
