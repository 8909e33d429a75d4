"""CLIP ViT-L/14-336 as LLaVA-NeXT and Phi-3-vision use it: patch features from
`feature_layer` (default -2), CLS dropped, 24 x 24 = 576 tokens per 336 crop."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.preprocess.base import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

CLIP_L14_336 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    projection_dim=768, image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)
# Same patch and tile size (so the same token counts), few layers, narrow.
CLIP_TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
    projection_dim=32, image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)


def clip_vision_config(size: str, attn: str) -> CLIPVisionConfig:
    return CLIPVisionConfig(**(CLIP_TINY if size == "tiny" else CLIP_L14_336), attn_implementation=attn)


@ENCODERS.register("clip_vit_l14_336")
class ClipViT(Encoder):
    tile_size = 336
    patch_size = 14
    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD
    native_connector = "flat"
    hf_id = "openai/clip-vit-large-patch14-336"
    lm_dim: ClassVar[dict[str, int]] = {"full": 4096, "tiny": 48}  # LLaVA-NeXT-Mistral-7B width

    def build_backbone(self, size: str, attn: str) -> tuple[nn.Module, int]:
        config = clip_vision_config(size, attn)
        return CLIPVisionModel(config), config.hidden_size

    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.backbone(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[self.feature_layer]
