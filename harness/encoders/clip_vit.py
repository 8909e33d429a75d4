"""CLIP ViT-L/14-336 as LLaVA-NeXT and Phi-3-vision use it: patch features from
`feature_layer` (default -2), CLS dropped, 24 x 24 = 576 tokens per 336 crop."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.encoders.weights import POSITION_IDS, Format, KeyMap
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from harness.reduce.scores import QKRecipe

CLIP_L14_336 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    projection_dim=768, image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)
# Same patch and tile size (so the same token counts), few layers, narrow.
CLIP_TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
    projection_dim=32, image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)


# openai/clip-vit-large-patch14-336 (CLIPModel): vision tower only.
CLIP = KeyMap("clip", prefixes=(("vision_model.", "backbone."),), ignore=(POSITION_IDS,))
# Phi-3-vision's CLIP tower alone (microsoft/Phi-3-vision-128k-instruct under connector=flat).
PHI3_CLIP = KeyMap(
    "phi3_vision_clip",
    prefixes=(("model.vision_embed_tokens.img_processor.vision_model.", "backbone."),),
    ignore=(POSITION_IDS,),
)
# llava-hf/llava-v1.6-* (LlavaNextForConditionalGeneration): the CLIP tower, the 2-layer projector
# and `image_newline`. Hub files name the tower `vision_tower.vision_model.*`; transformers 5
# saves `vision_tower.*` and holds `model.vision_tower.*` in memory: all are read.
LLAVA_NEXT_TOWER_PREFIXES = (
    ("model.vision_tower.vision_model.", "backbone."),
    ("vision_tower.vision_model.", "backbone."),
    ("model.vision_tower.", "backbone."),
    ("vision_tower.", "backbone."),
)
LLAVA_NEXT_HF = KeyMap(
    "llava_next_hf",
    prefixes=(
        *LLAVA_NEXT_TOWER_PREFIXES,
        ("model.multi_modal_projector.", "connector."),
        ("model.image_newline", "connector.image_newline"),
        ("multi_modal_projector.", "connector."),
        ("image_newline", "connector.image_newline"),
    ),
    ignore=(POSITION_IDS,),
)
# The same checkpoints' CLIP tower alone (clip_vit_l14_336 with its own connector).
LLAVA_NEXT_TOWER = KeyMap("llava_next_tower", prefixes=LLAVA_NEXT_TOWER_PREFIXES, ignore=(POSITION_IDS,))


@ENCODERS.register("clip_vit_l14_336")
class ClipViT(Encoder):
    tile_size = 336
    patch_size = 14
    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD
    native_connector = "flat"
    native_strategy = "center_crop"
    hf_id = "openai/clip-vit-large-patch14-336"
    lm_dim: ClassVar[dict[str, int]] = {"full": 4096, "tiny": 48}  # LLaVA-NeXT-Mistral-7B width
    checkpoint_formats: ClassVar[tuple[Format, ...]] = (
        (CLIP, None), (PHI3_CLIP, None), (LLAVA_NEXT_HF, "llava_next"), (LLAVA_NEXT_TOWER, None),
    )
    config_class = CLIPVisionConfig
    model_class = CLIPVisionModel
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": CLIP_L14_336, "tiny": CLIP_TINY}
    # CLIPEncoderLayer (transformers 5 CLIPVisionModel: no vision_model level)
    qk_recipe = QKRecipe(layers="encoder.layers", norm="layer_norm1", attention="self_attn")

