"""Pixel normalisation: the mean/std of the model families and a lookup table that
reproduces each reference's float arithmetic bit for bit (docs/preprocessing.md)."""

from __future__ import annotations

import numpy as np
import torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

def normalization_table(mean: tuple[float, ...], std: tuple[float, ...], arithmetic: str) -> np.ndarray:
    """float32 `[3, 256]`: the normalised value of every uint8 level, computed with the exact
    arithmetic of the reference, so that a table lookup reproduces it bit for bit.

    "transformers": `rescale` (float64 x * (1/255), cast to float32), then `(x - mean) / std` in
    float32 (`image_transforms.rescale` / `normalize`). "torchvision": `ToTensor` (float32 x / 255)
    then `Normalize` (`sub_(mean).div_(std)` in float32), as the original InternVL/Phi-3 code.
    """
    levels = np.arange(256, dtype=np.uint8)
    mean32 = np.asarray(mean, dtype=np.float32)
    std32 = np.asarray(std, dtype=np.float32)
    if arithmetic == "transformers":
        x = (levels.astype(np.float64) * (1 / 255)).astype(np.float32)
        return np.stack([(x - mean32[c]) / std32[c] for c in range(3)]).astype(np.float32)
    if arithmetic == "torchvision":
        x = torch.from_numpy(levels).to(torch.float32).div(255)
        m, s = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        return torch.stack([x.sub(m[c]).div(s[c]) for c in range(3)]).numpy()
    raise ValueError(f"unknown arithmetic {arithmetic!r}; valid: transformers, torchvision")
