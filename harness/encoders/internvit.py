"""InternViT-300M-448px as in InternVL2/2.5/3-1B and Vintern-1B-v2: transformers
InternVLVisionModel, last layer, CLS dropped, pixel shuffle 0.5 and `mlp1`: 256 tokens per
448 crop."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from transformers import InternVLVisionConfig, InternVLVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.encoders.weights import Format, KeyMap
from harness.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD
from harness.reduce.scores import QKRecipe

INTERNVIT_300M = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    image_size=[448, 448], patch_size=[14, 14], hidden_act="gelu", layer_norm_eps=1e-6, norm_type="layer_norm",
    layer_scale_init_value=0.1, attention_bias=True, use_qk_norm=False, use_mean_pooling=True,
    use_absolute_position_embeddings=True,
)
INTERNVIT_TINY = {**INTERNVIT_300M, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4}


# OpenGVLab/InternVL3-1B-hf and other transformers-format InternVL checkpoints.
INTERNVL_HF = KeyMap(
    "internvl_hf",
    prefixes=(
        ("model.vision_tower.", "backbone."),
        ("model.multi_modal_projector.", "connector."),
        ("vision_tower.", "backbone."),
        ("multi_modal_projector.", "connector."),
    ),
)
# 5CD-AI/Vintern-1B-v2 and original OpenGVLab InternVL checkpoints (`vision_model.*`, `mlp1.*`),
# renamed as transformers' InternVL conversion script does.
INTERNVL_ORIGINAL = KeyMap(
    "internvl_original",
    prefixes=(("vision_model.", "backbone."), ("mlp1.", "connector.")),
    renames=(
        (r"^0\.", "layer_norm."),
        (r"^1\.", "linear_1."),
        (r"^3\.", "linear_2."),
        (r"\.layers\.", ".layer."),
        (r"class_embedding$", "cls_token"),
        (r"position_embedding$", "position_embeddings"),
        (r"patch_embedding\.", "patch_embeddings.projection."),
        (r"\.ls(\d)$", r".lambda_\1"),
        (r"\.attn\.proj\.", ".attention.projection_layer."),
        (r"\.norm1\.", ".layernorm_before."),
        (r"\.norm2\.", ".layernorm_after."),
    ),
    qkv=True,
)


@ENCODERS.register("internvit_300m")
class InternViT(Encoder):
    tile_size = 448
    patch_size = 14
    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    native_connector = "internvl"
    native_strategy = "internvl_dynamic"
    hf_id = "OpenGVLab/InternVL3-1B-hf"
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ((INTERNVL_HF, "internvl"), (INTERNVL_ORIGINAL, "internvl"))
    lm_dim: ClassVar[dict[str, int]] = {"full": 896, "tiny": 48}  # Qwen2/2.5-0.5B width (InternVL3-1B, Vintern-1B-v2)
    default_feature_layer = -1  # the last layer, as InternVL (select_layer -1)
    config_class = InternVLVisionConfig
    model_class = InternVLVisionModel
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": INTERNVIT_300M, "tiny": INTERNVIT_TINY}
    # InternVLVisionLayer: q_norm / k_norm are identities unless use_qk_norm
    qk_recipe = QKRecipe(layers="encoder.layer", norm="layernorm_before", attention="attention", qk_norm=True)

    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.feature_layer == -1:
            return self.model.backbone(pixel_values=pixels).last_hidden_state
        return super().run_backbone(pixels)
