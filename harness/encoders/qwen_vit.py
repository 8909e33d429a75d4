"""Qwen2.5-VL's vision transformer (transformers `Qwen2_5_VisionTransformerPretrainedModel`):
14 px patches with a temporal patch of 2 frames, 2-D rotary positions, window attention
(112 px windows) with full attention in 4 blocks, and the patch merger (2x2 patches -> one
token at the language model's width). Views of any size whose sides are multiples of 28:
native resolution (`qwen_native`) or square tiles of 28k px. Several views (of several images)
run as one packed sequence with `grid_thw`, as `Qwen2_5_VLModel.get_image_features` does.
Facts and sources: docs/native_resolution.md.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from harness.connectors.qwen_merger import QwenMerger
from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.encoders.weights import Format, KeyMap
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from harness.preprocess.qwen_native import patchify
from harness.types import EncoderOutput, Layout, Views

# Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct share this ViT (675 M parameters); only the
# merger's output width differs (out_hidden_size 2048 for 3B, 3584 for 7B).
QWEN2_5_VIT = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, hidden_act="silu", in_channels=3,
    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2,
)
QWEN2_5_VIT_TINY = {**QWEN2_5_VIT, "depth": 4, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
                    "fullatt_block_indexes": [1, 3]}
UNIT = QwenMerger.UNIT  # patch 14 x spatial merge 2
PATCH, MERGE, TEMPORAL = (QWEN2_5_VIT[k] for k in ("patch_size", "spatial_merge_size", "temporal_patch_size"))
# Qwen/Qwen2.5-VL-3B-Instruct, -7B-Instruct (Qwen2_5_VLForConditionalGeneration): the ViT with its
# merger. Hub files name it `visual.*`; transformers 5 saves `model.visual.*`: both are read.
QWEN2_5_VL = KeyMap("qwen2_5_vl", prefixes=(("model.visual.", "backbone."), ("visual.", "backbone.")))


@ENCODERS.register("qwen2_5_vl_vit")
class QwenViT(Encoder):
    tile_size = 448  # the default tile of tiled strategies; any multiple of 28 is taken
    patch_size = 14
    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD
    native_connector = "qwen_merger"
    connector_choices = ("qwen_merger",)
    variable_views = True
    native_strategy = "qwen_native"
    hf_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ((QWEN2_5_VL, None),)
    lm_dim: ClassVar[dict[str, int]] = {"full": 3584, "tiny": 48}  # Qwen2.5-7B width; 3B: out_dim=2048
    default_feature_layer = -1  # the merger takes the last block
    config_class = Qwen2_5_VLVisionConfig
    model_class = Qwen2_5_VisionTransformerPretrainedModel
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": QWEN2_5_VIT, "tiny": QWEN2_5_VIT_TINY}
    layers_key = "depth"
    no_reduction = ("it has no CLS token, and its patch merger runs inside the ViT, so no patch features "
                    "reach a reducer")

    @classmethod
    def check_options(cls, *, pool: str = "mean_patch", feature_layer: int | None = None, **options: Any) -> None:
        super().check_options(pool=pool, **options)
        if pool != "mean_patch":
            raise ValueError(f"encoder {cls.name!r} has no CLS token; pool must be mean_patch, got {pool!r}")
        if feature_layer is not None and int(feature_layer) != cls.default_feature_layer:
            raise ValueError(f"encoder {cls.name!r}: the merger takes the last layer; "
                             f"feature_layer must be {cls.default_feature_layer}")

    @classmethod
    def check_tile_size(cls, tile_size: int, strategy: str = "the strategy") -> None:
        if tile_size % UNIT:
            raise ValueError(
                f"strategy {strategy!r} makes {tile_size}px tiles; encoder {cls.name!r} takes tiles whose side is "
                f"a multiple of {UNIT} (e.g. 336, 448); set preprocess.tile_size"
            )

    def backbone_config(self, size: str, attn: str) -> Qwen2_5_VLVisionConfig:
        config = self.config_class(**self.presets[size], out_hidden_size=self.out_dim)  # the merger's width
        config._attn_implementation = attn
        return config

    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """Merged tokens `[N, (H/28)*(W/28), D]` of N same-size views (one packed call)."""
        n, _, h, w = pixels.shape
        grid = torch.tensor([[1, h // PATCH, w // PATCH]] * n, device=pixels.device)
        merged, _ = self.run_packed(patchify(pixels, PATCH, MERGE, TEMPORAL), grid)
        return merged.reshape(n, -1, merged.shape[-1])

    def run_packed(self, rows: torch.Tensor, grid_thw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One packed call: (merged tokens in view order `[sum t*h*w/4, D]`, last-layer patch
        features `[sum t*h*w, C]` in the window order, each view's span contiguous)."""
        out = self.model.backbone(rows, grid_thw=grid_thw)
        return out.pooler_output, out.last_hidden_state

    @torch.inference_mode()
    def encode(self, batch: list[Views]) -> tuple[list[EncoderOutput], dict[str, float]]:
        """Every view of every image, at most `batch_views` views per packed backbone call
        (ceil(n / batch_views) near-equal calls, as the base class)."""
        rt = self.runtime
        layouts = [v.layout for v in batch]
        t0 = time.perf_counter()
        rows, grids, per_view = [], [], []
        for views in batch:
            px = views.pixel_values.to(rt.device, dtype=rt.dtype, non_blocking=True)
            rows.append(patchify(px, PATCH, MERGE, TEMPORAL))
            k, _, h, w = px.shape
            grids += [(1, h // PATCH, w // PATCH)] * k
            per_view += [(h // PATCH) * (w // PATCH)] * k
        rows_all = torch.cat(rows)
        rt.synchronize()
        t1 = time.perf_counter()
        n_views = len(grids)
        groups = np.array_split(np.arange(n_views), -(-n_views // self.batch_views))
        starts = np.concatenate([[0], np.cumsum(per_view)])
        merged_parts, patch_parts = [], []
        for group in groups:
            a, b = int(group[0]), int(group[-1]) + 1
            grid = torch.tensor(grids[a:b], device=rt.device)
            merged, patches = self.run_packed(rows_all[starts[a] : starts[b]], grid)
            merged_parts.append(merged)
            patch_parts.append(patches)
        merged_all, patches_all = torch.cat(merged_parts), torch.cat(patch_parts)
        rt.synchronize()
        t2 = time.perf_counter()
        outputs = []
        offset_tokens = offset_patches = 0
        view_index = 0
        for views, layout in zip(batch, layouts, strict=True):
            k = views.pixel_values.shape[0]
            n_patch = sum(per_view[view_index : view_index + k])
            n_merged = n_patch // MERGE**2
            content_patch = sum(per_view[view_index : view_index + layout.n_views])
            feats = merged_all[offset_tokens : offset_tokens + n_merged].reshape(k, n_merged // k, -1)
            tokens = self.connector(feats, layout)
            # Window order keeps each view's patches contiguous: the content views come first.
            pooled = patches_all[offset_patches : offset_patches + content_patch].float().mean(dim=0)
            outputs.append(EncoderOutput(tokens=tokens.float().cpu(), pooled=pooled.cpu()))
            offset_tokens += n_merged
            offset_patches += n_patch
            view_index += k
        rt.synchronize()
        t3 = time.perf_counter()
        return outputs, {"h2d": t1 - t0, "backbone": t2 - t1, "connector": t3 - t2}

    def pool(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        raise NotImplementedError("qwen2_5_vl_vit pools inside encode (mean of the content views' patch features)")
