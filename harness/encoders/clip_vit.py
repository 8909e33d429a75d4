"""CLIP ViT-L/14-336 as LLaVA-NeXT and Phi-3-vision use it: patch features from
`feature_layer` (default -2), CLS dropped, 24 x 24 = 576 tokens per 336 crop."""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.preprocess.base import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from harness.runtime import Runtime
from harness.types import Layout

CLIP_L14_336 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    projection_dim=768, image_size=336, patch_size=14, hidden_act="quick_gelu",
)
# Same patch and tile size (so the same token counts), few layers, narrow.
CLIP_TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
    projection_dim=32, image_size=336, patch_size=14, hidden_act="quick_gelu",
)


@ENCODERS.register("clip_vit_l14_336")
class ClipViT(Encoder):
    name = "clip_vit_l14_336"
    tile_size = 336
    patch_size = 14
    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD

    def __init__(
        self, *, size: str = "full", weights: str = "random", runtime: Runtime, batch_views: int = 16,
        feature_layer: int = -2, seed: int = 0,
    ) -> None:
        super().__init__(size=size, weights=weights, runtime=runtime, batch_views=batch_views)
        self.feature_layer = int(feature_layer)
        config = CLIPVisionConfig(**(CLIP_TINY if size == "tiny" else CLIP_L14_336))
        if weights != "random":
            raise NotImplementedError("pretrained CLIP weights are loaded by harness.encoders.weights (issue 4)")
        torch.manual_seed(seed)
        self.model = CLIPVisionModel(config).eval().to(runtime.device, runtime.dtype)

    @property
    def grid_side(self) -> int:
        return self.tile_size // self.patch_size

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[self.feature_layer][:, 1:]

    def connect(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        return features[: layout.n_views].reshape(-1, features.shape[-1])

    def num_tokens(self, layout: Layout) -> int:
        return layout.n_views * self.grid_side**2
