"""LLaVA-OneVision `anyres_max_9` preprocessing: LLaVA-NeXT's anyres (best pinpoint canvas,
aspect-preserving bicubic resize, black padding centred, base view first, tiles row-major)
with 384 px tiles and OneVision's 36 pinpoints (every grid from 1x1 to 6x6 tiles of 384).

Reference: transformers `LlavaOnevisionImageProcessorPil` (single images: `get_image_patches`).
The "max 9" is a token rule, not a pixel rule: the connector (`llava_onevision`) shrinks the
unpadded feature grid bilinearly when it holds more than 9 tiles' worth of patches, so up to
36 tiles are encoded. Facts: docs/native_resolution.md.
"""

from __future__ import annotations

from typing import ClassVar

from harness.preprocess import STRATEGIES
from harness.preprocess.llava_anyres import LlavaAnyres
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

ONEVISION_UNIT = 384
# transformers LlavaOnevisionConfig / LlavaOnevisionImageProcessor default: (h, w), h-major.
ONEVISION_PINPOINTS = tuple((h * ONEVISION_UNIT, w * ONEVISION_UNIT) for h in range(1, 7) for w in range(1, 7))


@STRATEGIES.register("llava_onevision")
class LlavaOnevision(LlavaAnyres):
    default_tile_size = ONEVISION_UNIT
    default_mean = OPENAI_CLIP_MEAN  # the processor class default; the hub checkpoints set 0.5 (SigLIP's)
    default_std = OPENAI_CLIP_STD
    pinpoint_unit: ClassVar[int] = ONEVISION_UNIT
    default_pinpoints: ClassVar[tuple[tuple[int, int], ...]] = ONEVISION_PINPOINTS
