"""Builders of dataset fixtures, written at test time (no binary files in git):
an MME-format parquet folder, MME release folders (both layouts), a folder of bad images."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.benchmarks.mme.subtasks import COGNITION
from harness.benchmarks.mme.subtasks import SUBTASKS as CATEGORIES

SPLIT_LAYOUT = ("artwork", "celebrity", "landmark", "posters", "scene")
COCO = ("existence", "count", "position", "color")


@dataclass(frozen=True)
class MMEImage:
    category: str
    file_name: str
    size: tuple[int, int]
    colour: tuple[int, int, int]
    questions: tuple[tuple[str, str], tuple[str, str]]  # (Yes question, No question)

    @property
    def id(self) -> str:
        return f"{self.category}/{self.file_name}"

    def encode(self) -> bytes:
        fmt = "PNG" if self.file_name.endswith(".png") else "JPEG"
        buf = io.BytesIO()
        Image.new("RGB", self.size, self.colour).save(buf, fmt, quality=95)
        return buf.getvalue()


def mme_images(per_category: int = 2) -> list[MMEImage]:
    """A few images per subtask, with MME's repeated file names: the COCO subtasks share
    one id, the cognition subtasks all have 0001.png.. (different images)."""
    out = []
    for ci, cat in enumerate(CATEGORIES):
        for k in range(per_category):
            if cat in COCO:
                name = "000000006040.jpg" if k == 0 else f"00000000{ci:02d}{k:02d}.jpg"
            elif cat in COGNITION:
                name = f"{k + 1:04d}.png"
            else:
                name = f"{cat[:3]}_{k:03d}.jpg"
            colour = ((ci * 17) % 256, (k * 60) % 256, 128)
            size = (24 + 8 * k, 16 + 4 * ci)
            yes = (f"Is {cat} item {k} shown? Please answer yes or no.", "Yes")
            no = (f"Is {cat} item {k} absent? Please answer yes or no.", "No")
            out.append(MMEImage(cat, name, size, colour, (yes, no)))
    return out


def write_mme_parquet(root: Path, images: list[MMEImage], shards: int = 2, seed: int = 0, rows_per_group: int = 5
                      ) -> Path:
    """`root/data/test-0000k-of-0000n.parquet` as `lmms-lab/MME` has them: one row per question,
    rows shuffled (so the Yes question comes first or second), several row groups per shard."""
    import datasets

    rows = []
    for im in images:
        data = im.encode()
        for q, a in im.questions:
            rows.append({"question_id": im.id, "image": {"bytes": data, "path": im.file_name},
                         "question": q, "answer": a, "category": im.category})
    random.Random(seed).shuffle(rows)
    features = datasets.Features({
        "question_id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "category": datasets.Value("string"),
    })
    (root / "data").mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        part = rows[s::shards]
        cols = {k: [r[k] for r in part] for k in features}
        ds = datasets.Dataset.from_dict(cols, features=features)
        ds.to_parquet(str(root / "data" / f"test-{s:05d}-of-{shards:05d}.parquet"), batch_size=rows_per_group)
    return root


def write_mme_release(root: Path, images: list[MMEImage], nested: bool = False, seed: int = 0) -> Path:
    """The original release folders: split layout (`images/` + `questions_answers_YN/`) for
    five subtasks, image and `.txt` side by side for the others. Question order in a .txt is
    random; `nested` puts them under `MME_Benchmark_release_version/MME_Benchmark/`."""
    rng = random.Random(seed)
    base = root / "MME_Benchmark_release_version" / "MME_Benchmark" if nested else root
    for im in images:
        if im.category in SPLIT_LAYOUT:
            image_path = base / im.category / "images" / im.file_name
            txt = base / im.category / "questions_answers_YN" / (Path(im.file_name).stem + ".txt")
        else:
            image_path = base / im.category / im.file_name
            txt = image_path.with_suffix(".txt")
        image_path.parent.mkdir(parents=True, exist_ok=True)
        txt.parent.mkdir(parents=True, exist_ok=True)
        image_path.write_bytes(im.encode())
        pairs = list(im.questions)
        if rng.random() < 0.5:
            pairs.reverse()
        txt.write_text("".join(f"{q}\t{a}\n" for q, a in pairs), encoding="utf-8")
    return root


def _png_with_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height: over any pixel limit, costs nothing."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


# What each bad file must become: "ok" or the error kind.
BAD_EXPECTED = {
    "good_a.png": "ok",
    "good_b.jpg": "ok",
    "cmyk.jpg": "ok",
    "gray16.png": "ok",
    "palette_transparent.png": "ok",
    "animated.gif": "ok",
    "undecodable.jpg": "error:undecodable",
    "truncated.jpg": "error:truncated",
    "empty.png": "error:empty",
    "huge_header.png": "error:too_large",
    "over_limit.png": "error:too_large",  # only with max_image_pixels below 1200*1000
}


def write_bad_folder(root: Path) -> Path:
    """The bad-input folder of issue 5, plus two good images."""
    root.mkdir(parents=True, exist_ok=True)
    grad = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    Image.fromarray(np.stack([grad, grad[::-1], np.full_like(grad, 90)], -1)).save(root / "good_a.png")
    Image.new("RGB", (80, 60), (200, 30, 30)).save(root / "good_b.jpg", quality=95)
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(root / "cmyk.jpg", quality=95)  # red
    Image.fromarray(np.full((20, 30), 65535 // 2, dtype=np.uint16)).save(root / "gray16.png")  # mid grey
    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(1, (0, 0, 16, 32))  # left half blue, right half transparent (index 0)
    pal.save(root / "palette_transparent.png", transparency=0)
    frames = [Image.new("P", (24, 24), i) for i in range(3)]
    for f in frames:
        f.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    (root / "undecodable.jpg").write_bytes(b"this is not an image at all" * 10)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "huge_header.png").write_bytes(_png_with_size(300_000, 300_000))
    Image.new("L", (1200, 1000), 128).save(root / "over_limit.png")
    return root


def write_tiny_clip(folder: Path) -> Path:
    """A tiny CLIPModel (safetensors) and a character-level CLIP BPE tokenizer, saved the way
    transformers saves them (offline)."""
    import json

    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789?.,'"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=336,
                  patch_size=14)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    assert (folder / "model.safetensors").exists()
    return folder
