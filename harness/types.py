"""The values that flow one way through the harness: Sample -> Views -> EncoderOutput -> Record.

Each box of the pipeline (data, preprocess, encoders, metrics, store) only sees these types,
so a box can be replaced without the others noticing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image


@dataclass(frozen=True)
class Question:
    """One question about a sample's image, as its benchmark states it (harness/benchmarks/).

    `id` is the benchmark's unit of scoring (MME: the image, whose two questions share it; MMBench:
    the original question, shared by its circular variants); `answers` the ground truth, one or
    many (TextVQA's ten); `options` letter -> text of a multiple-choice question; `fields`
    whatever else its prompt or scorer reads (hint, index, circular_index, ...).
    """

    id: str
    text: str
    answers: tuple[str, ...]
    category: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        """The (first) ground-truth answer."""
        return self.answers[0] if self.answers else ""


@dataclass
class Sample:
    """One image and what its dataset knows about it.

    `image` may be None when the image is loaded lazily from `path` (or `loader`); call
    `load()` to get it. `questions` holds the image's questions (`Question`), e.g. MME's two
    yes/no questions; all of them are answered from one encoding of the image.
    """

    id: str
    image: Image.Image | None = None
    path: Path | None = None
    label: str | None = None
    category: str | None = None
    questions: list[Question] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[], Image.Image] | None = field(default=None, repr=False)  # picklable, e.g. a partial

    def load(self) -> Image.Image:
        """Return the decoded image (datasets' loaders convert to RGB; strategies convert the rest)."""
        if self.image is not None:
            return self.image
        if self.loader is not None:
            return self.loader()
        if self.path is None:
            raise ValueError(f"sample {self.id!r} has neither an image nor a path")
        from harness.data.images import open_image

        return open_image(self.path)


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Pure geometry of how one image becomes encoder crops; needs no pixels.

    Sizes are (width, height); `grid` is (rows, cols) of the high-resolution tiles.
    `content_box` is (left, top, right, bottom) of the image inside the padded canvas.
    `n_views` counts the crops that carry image content (tiles + global view);
    `executed_views` counts the crops that pass through the encoder, padding crops included
    (Phi-3 pads to num_crops + 1 with zero crops and encodes them all).
    """

    strategy: str
    original_size: tuple[int, int]
    tile_size: int
    grid: tuple[int, int]
    resized_size: tuple[int, int]
    canvas_size: tuple[int, int]
    content_box: tuple[int, int, int, int]
    has_global: bool
    global_position: str | None  # "first" | "last" | None
    n_views: int
    executed_views: int
    # Views of variable size (native resolution, e.g. qwen_native): every view is
    # `view_size` (width, height) instead of tile_size x tile_size; `patch_grid` is the
    # reference's (t, h, w) grid of patches per view (Qwen2-VL `image_grid_thw`).
    view_size: tuple[int, int] | None = None
    patch_grid: tuple[int, int, int] | None = None

    @property
    def n_tiles(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def view_wh(self) -> tuple[int, int]:
        """(width, height) of each executed view: `view_size`, else the square tile."""
        return self.view_size if self.view_size is not None else (self.tile_size, self.tile_size)

    @property
    def executed_pixels(self) -> int:
        """Pixels that pass through the encoder (what a batch's time is shared by)."""
        w, h = self.view_wh
        return self.executed_views * w * h


@dataclass
class Views:
    """Normalised pixel tensors of one image, `[n_views, 3, H, W]` float32, and their Layout.

    `pixel_values` holds `layout.executed_views` crops in encoder order (padding crops included);
    H = W = tile_size unless the layout has a `view_size` (views of variable size).
    """

    pixel_values: torch.Tensor
    layout: Layout


@dataclass
class EncoderOutput:
    """What an encoder hands on for one image.

    `tokens` is the LLM-facing visual token sequence `[n_tokens, D]` (after the connector);
    `pooled` a single vector used by embedding-quality metrics.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class Record:
    """One flat row of results.

    `kind` is "image" (one per image), "run" (one summary per run), "metric" (run-level
    quality metrics) or "question" (one per question: a VLM's answer from `harness.vlm`,
    or the CLIP baseline's from `harness.benchmarks.mme.baseline`).
    `identity` holds the run/config identity shared by every row of a run; `values` the
    measurements. `to_row()` flattens both into one dict for the store.
    """

    kind: str
    identity: dict[str, Any]
    image_id: str | None = None
    status: str = "ok"
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = dict(self.identity)
        row.update(kind=self.kind, image_id=self.image_id, status=self.status, message=self.message)
        row.update(self.values)
        return row
