"""Phi-3-vision's image embedding: the CLIP ViT-L/14-336 backbone (layer -2, CLS dropped)
plus the HD connector (2x2 merge, sub_GN/glb_GN separators, projection to 3072)."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.encoders import ENCODERS
from harness.encoders.clip_vit import CLIP, ClipViT
from harness.encoders.weights import POSITION_IDS, Format, KeyMap

# microsoft/Phi-3-vision-128k-instruct: `model.vision_embed_tokens.*` minus the tied LM embedding `wte`.
PHI3_VISION = KeyMap(
    "phi3_vision",
    prefixes=(
        ("model.vision_embed_tokens.img_processor.vision_model.", "backbone."),
        ("model.vision_embed_tokens.", "connector."),
    ),
    ignore=(POSITION_IDS, r"^model\.vision_embed_tokens\.wte\."),
)


@ENCODERS.register("phi3_vision")
class Phi3Vision(ClipViT):
    native_connector = "phi3_hd"
    native_strategy = "phi3_hd"
    hf_id = "microsoft/Phi-3-vision-128k-instruct"
    lm_dim: ClassVar[dict[str, int]] = {"full": 3072, "tiny": 48}  # Phi-3-mini width
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ((PHI3_VISION, "phi3_hd"), (CLIP, None))

    def __init__(self, *, projection: str = "mlp", hd_transform_order: str = "sub_glb", **options: Any) -> None:
        """`projection` and `hd_transform_order` are the phi3_hd connector's (unused by other connectors)."""
        hd = (options.get("connector") or self.native_connector) == "phi3_hd"
        params = {"projection": projection, "hd_transform_order": hd_transform_order} if hd else {}
        super().__init__(connector_params=params, **options)
