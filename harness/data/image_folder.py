"""Any folder of images, searched recursively, in sorted order; optionally labelled by the
first-level subfolder (`root/<label>/.../image.jpg`).

Symbolic links: a linked subfolder is followed, each real folder once (a link back to a
folder already listed, a loop or an alias, adds nothing); a dangling link with an image
extension is listed, so that it becomes an error row (`missing`) instead of vanishing.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

from harness.data import DATASETS
from harness.data.base import Dataset
from harness.data.images import IMAGE_EXTENSIONS, open_image
from harness.data.selection import select
from harness.types import Sample

LABEL_MODES = ("none", "subfolder")
log = logging.getLogger("harness")


def list_images(root: Path, extensions: tuple[str, ...], recursive: bool = True) -> tuple[list[str], list[str]]:
    """Relative posix paths of the files (and dangling links) with one of `extensions`, sorted,
    and the linked folders not entered because their real folder was listed already.

    Real subfolders are listed first, then linked ones (sorted), so a file reached both ways
    keeps its real path; each real folder is entered once (by device and inode)."""
    found: list[str] = []
    repeated: list[str] = []
    seen: set[tuple[int, int]] = set()
    links: list[tuple[str, Path]] = []

    def walk(folder: Path, rel: str) -> None:
        stat = folder.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            repeated.append(rel)
            return
        seen.add((stat.st_dev, stat.st_ino))
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():  # follows links
                if not recursive:
                    continue
                if entry.is_symlink():
                    links.append((path, Path(entry.path)))
                else:
                    walk(Path(entry.path), path)
            elif os.path.splitext(entry.name)[1].lower() in extensions and (entry.is_file() or entry.is_symlink()):
                found.append(path)

    walk(root, "")
    while links:  # breadth-first over links, shallowest and then alphabetically first wins
        links.sort(key=lambda item: (item[0].count("/"), item[0]))
        rel, path = links.pop(0)
        walk(path, rel)
    return sorted(found), sorted(repeated)


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
        files, repeated = list_images(self.root, self.extensions, self.recursive)
        if repeated:
            log.warning("image_folder: %d linked folder(s) lead to folders listed already, not entered again: %s",
                        len(repeated), ", ".join(repeated[:5]))
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
