"""A deterministic synthetic image set that ships with the code (no download).

Each image is drawn from (seed, index) alone: a coloured background, `count` copies of one
shape in one region, and a short word in small print. Sizes cycle through ordinary and
extreme aspect ratios, so strategies differ visibly in tiles and tokens. Labels are the shape;
colour, count and position are in `meta`, with an MME-style yes/no question pair.
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw

from harness.data import DATASETS
from harness.data.base import Dataset
from harness.types import Sample

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
POSITIONS = ("left", "right", "top", "bottom")
WORDS = ("cat", "harbor", "seven", "violet", "quartz", "nimbus", "lantern", "zephyr")
SIZES = (
    (336, 336), (448, 448), (640, 480), (480, 640), (1024, 768), (808, 1100), (1920, 1080),
    (1080, 1920), (500, 2000), (2000, 500), (100, 100), (1344, 1344), (704, 396), (13, 400),
    (400, 13), (1200, 300),
)


@DATASETS.register("synthetic")
class Synthetic(Dataset):
    name = "synthetic"

    def __init__(self, num_images: int = 48, seed: int = 0, max_side: int = 2000) -> None:
        if num_images <= 0:
            raise ValueError(f"num_images must be positive, got {num_images}")
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.max_side = int(max_side)

    def __len__(self) -> int:
        return self.num_images

    @property
    def has_labels(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "seed": self.seed, "max_side": self.max_side}

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.num_images:
            raise IndexError(index)
        rng = random.Random(f"{self.seed}:{index}")
        w, h = SIZES[index % len(SIZES)]
        scale = min(1.0, self.max_side / max(w, h))
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        shape = SHAPES[rng.randrange(len(SHAPES))]
        colour = rng.choice(sorted(COLOURS))
        position = rng.choice(POSITIONS)
        count = rng.randint(1, 4)
        word = rng.choice(WORDS)
        image = _draw(w, h, shape, COLOURS[colour], position, count, word, rng)
        other_colour = rng.choice([c for c in sorted(COLOURS) if c != colour])
        questions = [
            (f"Is there a {colour} {shape} in this image? Please answer yes or no.", "Yes"),
            (f"Is there a {other_colour} {shape} in this image? Please answer yes or no.", "No"),
        ]
        if rng.random() < 0.5:
            questions.reverse()
        return Sample(
            id=f"synthetic/{self.seed}/{index:06d}",
            image=image,
            label=shape,
            category=shape,
            questions=questions,
            meta={"colour": colour, "position": position, "count": count, "word": word, "width": w, "height": h},
        )


def _draw(
    w: int, h: int, shape: str, rgb: tuple[int, int, int], position: str, count: int, word: str, rng: random.Random
) -> Image.Image:
    bg = tuple(rng.randint(180, 250) for _ in range(3))
    image = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(image)
    # Region of the image that holds the shapes.
    x0, y0, x1, y1 = {
        "left": (0, 0, w / 2, h),
        "right": (w / 2, 0, w, h),
        "top": (0, 0, w, h / 2),
        "bottom": (0, h / 2, w, h),
    }[position]
    side = max(1.0, min(x1 - x0, y1 - y0) / (count + 1))
    for i in range(count):
        cx = x0 + (x1 - x0) * (i + 1) / (count + 1)
        cy = y0 + (y1 - y0) / 2 + rng.uniform(-0.1, 0.1) * (y1 - y0)
        r = side / 2
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape == "circle":
            draw.ellipse(box, fill=rgb)
        elif shape == "square":
            draw.rectangle(box, fill=rgb)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=rgb)
    # Small print: legible at full resolution, lost by a 336 squash of a large image.
    draw.text((max(0, w // 50), max(0, h // 50)), word, fill=(10, 10, 10))
    return image
