"""Peer equivalence with transformers' own models (tiny random configs, shared weights):
internvit_300m == InternVLModel.get_image_features; clip + llava_next == LlavaNextModel's
image features after pack_image_features (values and counts)."""

from __future__ import annotations

import torch
from transformers import InternVLConfig, InternVLModel, LlavaNextConfig, LlavaNextModel

from harness.encoders import ENCODERS
from harness.encoders.clip_vit import CLIP_TINY
from harness.encoders.internvit import INTERNVIT_TINY
from harness.runtime import Runtime
from harness.types import Layout, Views

CPU = Runtime.resolve("cpu", "float32")
TEXT = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=64)


def test_internvit_equals_transformers_internvl_get_image_features() -> None:
    torch.manual_seed(0)
    config = InternVLConfig(
        vision_config=dict(INTERNVIT_TINY), text_config={"model_type": "qwen2", **TEXT}, downsample_ratio=0.5,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    peer = InternVLModel(config).eval()
    ours = ENCODERS.get("internvit_300m")(size="tiny", weights="random", runtime=CPU, out_dim=48, batch_views=2)
    ours.model.backbone.load_state_dict(peer.vision_tower.state_dict())
    ours.model.connector.load_state_dict(peer.multi_modal_projector.state_dict())
    # 1x2 tiles + thumbnail (last), as internvl_dynamic plans 896x448
    layout = Layout(strategy="internvl_dynamic", original_size=(896, 448), tile_size=448, grid=(1, 2),
                    resized_size=(896, 448), canvas_size=(896, 448), content_box=(0, 0, 896, 448),
                    has_global=True, global_position="last", n_views=3, executed_views=3)
    pixels = torch.randn(3, 3, 448, 448)
    with torch.no_grad():
        want = peer.get_image_features(
            pixel_values=pixels, vision_feature_layer=-1, vision_feature_select_strategy="default"
        ).pooler_output
    (out,), _ = ours.encode([Views(pixels, layout)])
    assert want.shape == (3, 256, 48)
    assert out.num_tokens == ours.num_tokens(layout) == 3 * 256
    torch.testing.assert_close(out.tokens, want.reshape(-1, 48), atol=1e-5, rtol=1e-4)


def test_clip_llava_next_equals_transformers_pack_image_features() -> None:
    torch.manual_seed(0)
    config = LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", **CLIP_TINY}, text_config={"model_type": "llama", **TEXT},
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    peer = LlavaNextModel(config).eval()
    ours = ENCODERS.get("clip_vit_l14_336")(
        size="tiny", weights="random", runtime=CPU, connector="llava_next", out_dim=48, batch_views=4,
    )
    ours.model.backbone.load_state_dict(peer.vision_tower.state_dict())
    ours.model.connector.load_state_dict(
        {**peer.multi_modal_projector.state_dict(), "image_newline": peer.image_newline.detach()}
    )
    # (W, H, rows, cols): grids from the reference table (pinpoints read as height, width)
    cases = [(704, 396, 2, 2), (13, 4000, 3, 1)]
    layouts = [
        Layout(strategy="llava_anyres", original_size=(w, h), tile_size=336, grid=(r, c),
               resized_size=(336 * c, 336 * r), canvas_size=(336 * c, 336 * r), content_box=(0, 0, 336 * c, 336 * r),
               has_global=True, global_position="first", n_views=1 + r * c, executed_views=1 + r * c)
        for w, h, r, c in cases
    ]
    pixels = [torch.randn(lay.executed_views, 3, 336, 336) for lay in layouts]
    padded = torch.zeros(2, 5, 3, 336, 336)
    for i, p in enumerate(pixels):
        padded[i, : p.shape[0]] = p
    image_sizes = torch.tensor([[h, w] for w, h, _, _ in cases])
    with torch.no_grad():
        packed = peer.get_image_features(  # per image: projector, then pack_image_features (unpad + newlines)
            pixel_values=padded, image_sizes=image_sizes, vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        ).pooler_output
        # per-image lengths from pack_image_features itself, on the projected per-image features
        hidden = peer.vision_tower(torch.cat(pixels), output_hidden_states=True).hidden_states[-2][:, 1:]
        per_image = peer.multi_modal_projector(hidden).split([p.shape[0] for p in pixels])
        repacked, lens = peer.pack_image_features(per_image, image_sizes, "default", image_newline=peer.image_newline)
    assert len(packed) == len(repacked) == 2
    for a, b in zip(packed, repacked, strict=True):
        torch.testing.assert_close(a, b)
    outputs, _ = ours.encode([Views(p, lay) for p, lay in zip(pixels, layouts, strict=True)])
    assert [o.num_tokens for o in outputs] == lens.tolist() == [1948, 648]
    assert [ours.num_tokens(lay) for lay in layouts] == [1948, 648]
    for out, want in zip(outputs, packed, strict=True):
        torch.testing.assert_close(out.tokens, want, atol=1e-5, rtol=1e-4)
