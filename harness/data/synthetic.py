"""A deterministic synthetic image set that ships with the code (no download).

Each image is drawn from (seed, index) alone: a coloured background, `count` copies of one
shape of one colour in one region (left/right/top/bottom half), and a word in small print
(PIL's default 10 px font) near the top-left corner. Sizes cycle through ordinary and extreme
aspect ratios up to 2000 px, so strategies differ visibly in tiles and tokens, and the small
print of a 2000 px image survives tiling but not a 336 squash. Labels are the shape; colour,
count, position, word and the word's box are in `meta`, with one MME-style yes/no question
pair per image (one Yes, one No, in random order) about colour, count, position or the word.

Samples carry a picklable loader (the drawing spec), not pixels; drawing takes a few ms.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from harness.benchmarks.mme.subtasks import ANSWER_SUFFIX
from harness.bounds import bounded_int
from harness.data import DATASETS
from harness.data.base import Dataset, digest
from harness.types import Question, Sample

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
POSITIONS = ("left", "right", "top", "bottom")
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
WORDS = ("cat", "harbor", "seven", "violet", "quartz", "nimbus", "lantern", "zephyr")
QUESTION_KINDS = ("colour", "count", "position", "word")
SIZES = (
    (336, 336), (448, 448), (640, 480), (480, 640), (1024, 768), (808, 1100), (1920, 1080),
    (1080, 1920), (500, 2000), (2000, 500), (100, 100), (1344, 1344), (704, 396), (13, 400),
    (400, 13), (1200, 300), (2000, 2000), (2000, 120),
)
MAX_SIDE = 8192
MAX_SYNTHETIC_IMAGES = 1_000_000
NUMBERS = ("zero", "one", "two", "three", "four", "five")


def make_spec(seed: int, index: int, max_side: int = 2000) -> dict[str, Any]:
    """Everything about image `index` of set `seed`, without drawing it."""
    rng = random.Random(f"{seed}:{index}")
    w, h = SIZES[index % len(SIZES)]
    scale = min(1.0, max_side / max(w, h))
    w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return {
        "width": w,
        "height": h,
        "shape": SHAPES[rng.randrange(len(SHAPES))],
        "colour": rng.choice(sorted(COLOURS)),
        "position": rng.choice(POSITIONS),
        "count": rng.randint(1, 4),
        "word": rng.choice(WORDS),
        "background": tuple(rng.randint(180, 250) for _ in range(3)),
        "jitter": [rng.uniform(-0.1, 0.1) for _ in range(4)],
        "question_kind": rng.choice(QUESTION_KINDS),
        "no_choice": rng.random(),
        "yes_first": rng.random() < 0.5,
    }


def text_box(spec: dict[str, Any]) -> tuple[int, int, int, int]:
    """Where the small print is drawn: (left, top, right, bottom) in pixels."""
    w, h = spec["width"], spec["height"]
    origin = (max(0, w // 50), max(0, h // 50))
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(origin, spec["word"], font=ImageFont.load_default())
    return (int(box[0]), int(box[1]), int(min(w, box[2])), int(min(h, box[3])))


def render(spec: dict[str, Any]) -> Image.Image:
    """Draw the image a spec describes (pure: same spec, same bytes)."""
    w, h = spec["width"], spec["height"]
    image = Image.new("RGB", (w, h), tuple(spec["background"]))
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = {
        "left": (0, 0, w / 2, h),
        "right": (w / 2, 0, w, h),
        "top": (0, 0, w, h / 2),
        "bottom": (0, h / 2, w, h),
    }[spec["position"]]
    count, rgb = spec["count"], COLOURS[spec["colour"]]
    horizontal = (x1 - x0) >= (y1 - y0)  # line the shapes up along the region's long side
    along, across = ((x1 - x0), (y1 - y0)) if horizontal else ((y1 - y0), (x1 - x0))
    r = max(0.5, min(along / (count + 1), across) * 0.4)
    for i in range(count):
        t = (i + 1) / (count + 1)
        j = spec["jitter"][i] * across * 0.5
        if horizontal:
            cx, cy = x0 + along * t, y0 + across / 2 + j
        else:
            cx, cy = x0 + across / 2 + j, y0 + along * t
        box = (cx - r, cy - r, cx + r, cy + r)
        if spec["shape"] == "circle":
            draw.ellipse(box, fill=rgb)
        elif spec["shape"] == "square":
            draw.rectangle(box, fill=rgb)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=rgb)
    draw.text((max(0, w // 50), max(0, h // 50)), spec["word"], fill=(10, 10, 10), font=ImageFont.load_default())
    return image


def questions(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """One Yes and one No question about the image, MME-style."""
    shape, kind = spec["shape"], spec["question_kind"]

    def pick(options: list[str]) -> str:
        return options[int(spec["no_choice"] * len(options))]

    if kind == "colour":
        other = pick([c for c in sorted(COLOURS) if c != spec["colour"]])
        yes, no = (f"Is there a {c} {shape} in this image?" for c in (spec["colour"], other))
    elif kind == "count":
        other = pick([n for n in range(1, 5) if n != spec["count"]])
        yes, no = (f"Are there exactly {NUMBERS[n]} {shape}s in this image?" for n in (spec["count"], other))
    elif kind == "position":
        yes, no = (
            f"Are the {shape}s in the {p} half of this image?" for p in (spec["position"], OPPOSITE[spec["position"]])
        )
    else:
        other = pick([x for x in WORDS if x != spec["word"]])
        yes, no = (f'Does the small print in this image say "{x}"?' for x in (spec["word"], other))
    pairs = [(yes + ANSWER_SUFFIX, "Yes"), (no + ANSWER_SUFFIX, "No")]
    return pairs if spec["yes_first"] else pairs[::-1]


@DATASETS.register("synthetic")
class Synthetic(Dataset):
    benchmark = "mme"  # MME-style yes/no pairs (scored as yes/no: its categories are not MME's)

    def __init__(self, num_images: int = 48, seed: int = 0, max_side: int = 2000) -> None:
        self.num_images = bounded_int("dataset.num_images", num_images, 1, MAX_SYNTHETIC_IMAGES)
        self.seed = bounded_int("dataset.seed", seed, 0, 2**32 - 1)
        self.max_side = bounded_int("dataset.max_side", max_side, 1, MAX_SIDE)

    def __len__(self) -> int:
        return self.num_images

    @property
    def has_labels(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "seed": self.seed, "max_side": self.max_side}

    def fingerprint(self) -> str:
        """Generated from its parameters alone (the drawing code is versioned with the harness)."""
        return digest({"synthetic": self.params(), "sizes": SIZES})

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.num_images:
            raise IndexError(index)
        spec = make_spec(self.seed, index, self.max_side)
        meta = {k: spec[k] for k in ("colour", "position", "count", "word", "width", "height", "question_kind")}
        meta["text_box"] = text_box(spec)
        image_id = f"synthetic/{self.seed}/{index:06d}"
        return Sample(
            id=image_id,
            label=spec["shape"],
            category=spec["shape"],
            questions=[Question(image_id, q, (a,), spec["shape"]) for q, a in questions(spec)],
            meta=meta,
            loader=partial(render, spec),
        )
