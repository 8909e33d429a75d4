"""The references each strategy is checked and timed against (tests and bench only).

transformers' PIL image processors, built offline from explicit parameters, and a
transcription of Phi-3-vision's `HD_transform` + `Phi3VImageProcessor.preprocess` (HF Hub
remote code; transformers has no Phi-3-V). torchvision is not installed, so the transcription
uses what its calls do on PIL images: `F.resize` -> PIL bilinear, `F.pad` -> `ImageOps.expand`,
`ToTensor` -> float32 / 255, `Normalize` -> `sub_(mean).div_(std)`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from harness.preprocess.base import Strategy
from harness.preprocess.llava_anyres import PINPOINT_UNIT


def transformers_reference(strategy: Strategy) -> Callable[[Image.Image], torch.Tensor]:
    """image -> float32 `[n, 3, S, S]` from the transformers processor matching `strategy`."""
    s, mean, std = strategy.tile_size, list(strategy.mean), list(strategy.std)
    common = {"image_mean": mean, "image_std": std, "resample": 3, "do_rescale": True, "do_normalize": True}
    if strategy.name == "resize":
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        proc = GotOcr2ImageProcessorPil(size={"height": s, "width": s}, crop_to_patches=False, **common)
    elif strategy.name == "internvl_dynamic":
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        if not strategy.thumbnail:
            raise ValueError("transformers always adds the thumbnail; compare with thumbnail=True")
        proc = GotOcr2ImageProcessorPil(
            size={"height": s, "width": s}, crop_to_patches=True, min_patches=strategy.min_tiles,
            max_patches=strategy.max_tiles, **common,
        )
    elif strategy.name == "center_crop":
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        proc = CLIPImageProcessorPil(size={"shortest_edge": s}, crop_size={"height": s, "width": s}, **common)
    elif strategy.name == "llava_anyres":
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        unit = s / PINPOINT_UNIT
        pinpoints = [[int(a * unit), int(b * unit)] for a, b in strategy.grid_pinpoints]
        if strategy.pinpoint_order == "wh":  # transformers reads (h, w): swap to emulate original LLaVA
            pinpoints = [[b, a] for a, b in pinpoints]
        proc = LlavaNextImageProcessorPil(
            size={"shortest_edge": s}, crop_size={"height": s, "width": s}, image_grid_pinpoints=pinpoints, **common
        )
    elif strategy.name == "llava_onevision":
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        unit = s / strategy.pinpoint_unit
        pinpoints = [[int(a * unit), int(b * unit)] for a, b in strategy.grid_pinpoints]
        if strategy.pinpoint_order == "wh":
            pinpoints = [[b, a] for a, b in pinpoints]
        proc = LlavaOnevisionImageProcessorPil(size={"height": s, "width": s}, image_grid_pinpoints=pinpoints,
                                               **common)
    elif strategy.name == "phi3_hd":
        return lambda image: phi3_reference(image, strategy.num_crops, s, strategy.mean, strategy.std)
    else:
        raise ValueError(f"no reference for strategy {strategy.name!r}")

    def run(image: Image.Image) -> torch.Tensor:
        pixel_values = proc(image, return_tensors="pt")["pixel_values"]
        return pixel_values.reshape(-1, 3, s, s)

    return run


def phi3_reference(
    image: Image.Image, num_crops: int = 16, size: int = 336, mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
) -> torch.Tensor:
    """Phi-3-vision's preprocessing of one image, `[num_crops + 1, 3, S, S]` (336 -> `size`)."""
    img = image.convert("RGB")
    width, height = img.size
    trans = False
    if width < height:
        img = img.transpose(Image.TRANSPOSE)
        trans = True
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_w = int(scale * size)
    new_h = int(new_w / ratio)
    img = img.resize((new_w, new_h), Image.BILINEAR)  # torchvision F.resize(img, [new_h, new_w]) on PIL
    # padding_336
    tar = int(np.ceil(new_h / size) * size)
    top_padding = int((tar - new_h) / 2)
    bottom_padding = tar - new_h - top_padding
    img = ImageOps.expand(img, border=(0, top_padding, 0, bottom_padding), fill=(255, 255, 255))
    if trans:
        img = img.transpose(Image.TRANSPOSE)
    # ToTensor + Normalize
    hd = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    hd = hd.to(torch.float32).div(255)
    hd = hd.sub_(torch.as_tensor(mean, dtype=torch.float32)[:, None, None])
    hd = hd.div_(torch.as_tensor(std, dtype=torch.float32)[:, None, None])
    global_image = F.interpolate(hd.unsqueeze(0).float(), size=(size, size), mode="bicubic").to(hd.dtype)
    h, w = hd.shape[1], hd.shape[2]
    tiles = hd.reshape(1, 3, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, size, size)
    crops = torch.cat([global_image, tiles], dim=0)
    if crops.shape[0] < num_crops + 1:
        pad = torch.zeros(num_crops + 1 - crops.shape[0], 3, size, size, dtype=crops.dtype)
        crops = torch.cat([crops, pad], dim=0)
    return crops


def phi3_num_tokens(rows: int, cols: int) -> int:
    """`num_img_tokens` of Phi3VImageProcessor, with h = rows and w = cols."""
    return (rows * cols + 1) * 144 + 1 + (rows + 1) * 12


def llava_num_tokens(width: int, height: int, rows: int, cols: int) -> int:
    """LLaVA-NeXT visual tokens (transformers' `_get_number_of_features`, CLIP-336, 'default')."""
    ch, cw = 24 * rows, 24 * cols
    if width / height > cw / ch:
        nh = int(round(height * (cw / width), 7))
        ch -= 2 * ((ch - nh) // 2)
    else:
        nw = int(round(width * (ch / height), 7))
        cw -= 2 * ((cw - nw) // 2)
    return 576 + ch * cw + ch


__all__ = ["llava_num_tokens", "phi3_num_tokens", "phi3_reference", "transformers_reference"]
