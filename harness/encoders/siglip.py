"""SigLIP so400m-patch14-384 (transformers `SiglipVisionModel`), the vision tower of
LLaVA-OneVision, Idefics3 and PaliGemma: 27 x 27 = 729 patch tokens per 384 crop, no CLS.

The pooled embedding has two choices: `pool=mean_patch` (mean of the patch features, as for
every encoder) or `pool=global_cls`, which here is SigLIP's attention-pooling head (`head`,
a learned probe attending over the post-layernorm last layer: the image embedding SigLIP was
trained with). The head's vector takes the CLS slot of `run_backbone`'s output, so the base
class pools, connects and batches as for CLIP. Checkpoints without a head (LLaVA-OneVision's
26-layer tower) take `pool=mean_patch` only. Facts: docs/native_resolution.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.encoders.clip_vit import LLAVA_NEXT_HF, LLAVA_NEXT_TOWER_PREFIXES
from harness.encoders.weights import POSITION_IDS, Format, KeyMap

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
SO400M_384 = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=384,
    patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=True,
)
SIGLIP_TINY = {**SO400M_384, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
               "num_attention_heads": 4}


# google/siglip-so400m-patch14-384 (SiglipModel): the vision tower with its pooling head.
SIGLIP = KeyMap("siglip", prefixes=(("vision_model.", "backbone."),), ignore=(POSITION_IDS,))
# llava-hf/llava-onevision-qwen2-*-hf (LlavaOnevisionForConditionalGeneration): the SigLIP tower (26
# blocks, no pooling head: so400m's 27th block, post-layernorm and head may be absent, and
# `Siglip.after_load` checks that nothing else is and refuses what would need them), the
# projector and `image_newline`, under the same names as LLaVA-NeXT's.
ONEVISION_ABSENT = (r"^backbone\.head\.", r"^backbone\.encoder\.layers\.\d+\.", r"^backbone\.post_layernorm\.")
LLAVA_ONEVISION_HF = KeyMap(
    "llava_onevision_hf", prefixes=LLAVA_NEXT_HF.prefixes, ignore=(POSITION_IDS,), absent_ok=ONEVISION_ABSENT,
)
LLAVA_ONEVISION_TOWER = KeyMap(
    "llava_onevision_tower", prefixes=LLAVA_NEXT_TOWER_PREFIXES, ignore=(POSITION_IDS,), absent_ok=ONEVISION_ABSENT,
)


@ENCODERS.register("siglip_so400m")
class Siglip(Encoder):
    tile_size = 384
    patch_size = 14
    mean = SIGLIP_MEAN
    std = SIGLIP_STD
    native_connector = "flat"
    connector_choices = ("flat", "llava_onevision")  # 27x27 patches: no 2x2 merge (phi3_hd, internvl)
    native_strategy = "resize"  # SiglipImageProcessor: squash to 384x384, bicubic, mean/std 0.5
    hf_id = "google/siglip-so400m-patch14-384"
    checkpoint_formats: ClassVar[tuple[Format, ...]] = (
        (SIGLIP, None), (LLAVA_ONEVISION_HF, "llava_onevision"), (LLAVA_ONEVISION_TOWER, None),
    )
    lm_dim: ClassVar[dict[str, int]] = {"full": 896, "tiny": 48}  # LLaVA-OneVision-0.5B (Qwen2-0.5B) width
    config_class = SiglipVisionConfig
    model_class = SiglipVisionModel
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": SO400M_384, "tiny": SIGLIP_TINY}
    no_reduction = "it has no CLS token to score patches with (slot 0 of its features is the pooling head's vector)"

    def after_load(self, absent: list[str]) -> None:
        """LLaVA-OneVision's tower lacks so400m's last block, post-layernorm and pooling head
        (allowed by its key map): check that only those are absent, drop the head, and refuse
        what would read the random block (`feature_layer=-1`, `pool=global_cls`)."""
        if not absent:
            return
        from harness.encoders.weights import WeightsError

        last = len(self.model.backbone.encoder.layers) - 1
        droppable = ("backbone.head.", f"backbone.encoder.layers.{last}.", "backbone.post_layernorm.")
        stray = [k for k in absent if not k.startswith(droppable)]
        if stray:
            raise WeightsError(f"{self.weights_source}: missing key(s) {', '.join(stray[:10])}")
        if self.pool_mode == "global_cls":
            raise WeightsError(f"{self.weights_source}: this tower has no SigLIP pooling head; use pool=mean_patch")
        if any(k.startswith(droppable[1]) for k in absent) and self.feature_layer == -1:
            raise WeightsError(
                f"{self.weights_source}: this tower has {last} blocks (LLaVA-OneVision drops the last one); "
                f"use feature_layer=-2, its last block"
            )
        self.model.backbone.use_head = False
        del self.model.backbone.head

    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """`[N, 1+729, C]`: slot 0 is the attention-pooled vector (the head; the patch mean when
        the tower has no head), then the patch features of `feature_layer`."""
        out = self.model.backbone(pixel_values=pixels, output_hidden_states=True)
        patches = out.hidden_states[self.feature_layer]
        head = out.pooler_output if out.pooler_output is not None else patches.mean(dim=1)
        return torch.cat([head[:, None].to(patches.dtype), patches], dim=1)
