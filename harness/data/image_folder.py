"""Any folder of images, searched recursively, in sorted order; optionally labelled by the
first-level subfolder (`root/<label>/.../image.jpg`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from harness.data import DATASETS
from harness.data.base import Dataset
from harness.data.images import IMAGE_EXTENSIONS, open_image
from harness.data.selection import select
from harness.types import Sample

LABEL_MODES = ("none", "subfolder")


@DATASETS.register("image_folder")
class ImageFolder(Dataset):

    def __init__(
        self,
        path: str | None = None,
        recursive: bool = True,
        extensions: list[str] | tuple[str, ...] = IMAGE_EXTENSIONS,
        labels: str = "none",
        limit: int | None = None,
        seed: int | None = None,
        max_image_pixels: int | None = None,
    ) -> None:
        if path is None:
            raise ValueError("image_folder needs dataset.path=<folder of images>")
        self.root = Path(path).expanduser()
        if not self.root.is_dir():
            raise ValueError(f"image_folder: dataset.path={path!r} is not a folder")
        if labels not in LABEL_MODES:
            raise ValueError(f"image_folder: labels must be one of {', '.join(LABEL_MODES)}; got {labels!r}")
        self.recursive = bool(recursive)
        self.extensions = tuple(sorted({e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}))
        self.labels = labels
        self.limit, self.seed = limit, seed
        self.max_image_pixels = max_image_pixels
        pattern = "**/*" if self.recursive else "*"
        files = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.glob(pattern)
            if p.suffix.lower() in self.extensions and p.is_file()
        )
        if not files:
            raise ValueError(
                f"image_folder: no images with extensions {', '.join(self.extensions)} under {self.root}"
            )
        self.files = [files[i] for i in select(len(files), limit, seed)]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_labels(self) -> bool:
        return self.labels == "subfolder"

    def params(self) -> dict[str, Any]:
        return {
            "path": str(self.root), "recursive": self.recursive, "labels": self.labels,
            "limit": self.limit, "seed": self.seed, "n": len(self.files),
        }

    def __getitem__(self, index: int) -> Sample:
        rel = self.files[index]
        path = self.root / rel
        parts = rel.split("/")
        label = parts[0] if self.labels == "subfolder" and len(parts) > 1 else None
        return Sample(
            id=rel,
            path=path,
            label=label,
            category=label,
            loader=partial(open_image, path, max_pixels=self.max_image_pixels),
        )
