"""A benchmark's questions grouped by image, from the hub id, a local copy of the hub's parquet
files, or the official release files: one Sample per image holding all of its questions, so
that every question of an image is answered from one encoding.

A benchmark folder's `data.py` subclasses `BenchmarkDataset` with the hub's id, config, split and
columns, and says which rows share an image (`image_key`), what a row asks (`questions`), and,
where there is one, how to read the release files (`index_release`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from harness.benchmarks.rows import HubRows, ParquetRows, Row, load_hub, parquet_files, raise_error
from harness.bounds import optional_int
from harness.data.base import MAX_IMAGE_PIXELS, Dataset, digest, file_entries
from harness.data.images import ImageLoadError, open_image
from harness.data.selection import MAX_LIMIT, select
from harness.types import Question, Sample

SOURCES = ("hub", "parquet", "release")


class ImageItem(NamedTuple):
    """One image: its id, category (None when its questions differ), questions, and where its
    pixels are: a file, (file index, row) of the hub rows, or the encoded bytes."""

    image_id: str
    category: str | None
    questions: list[Question]
    where: Path | tuple[int, int] | bytes


class BenchmarkDataset(Dataset):
    """Base class of a benchmark's dataset (see the module docstring)."""

    hf_id: ClassVar[str]
    hf_config: ClassVar[str | None] = None
    hf_split: ClassVar[str]
    required: ClassVar[tuple[str, ...]]  # text columns of the hub's schema
    optional: ClassVar[tuple[str, ...]] = ()
    release_help: ClassVar[str] = "no official release format is read"
    # No image id in the hub's columns: rows whose image bytes are equal share the image
    # (`image_key` then sees the hash as row["image_digest"]).
    key_by_image_bytes: ClassVar[bool] = False

    def __init__(
        self, source: str | None = None, path: str | None = None, images: str | None = None,
        hf_id: str | None = None, config: str | None = None, split: str | None = None, revision: str | None = None,
        cache_dir: str | None = None, categories: list[str] | str | None = None, limit: int | None = None,
        seed: int | None = None, max_image_pixels: int | None = None,
    ) -> None:
        what = self.benchmark or type(self).__name__
        self.what = what
        self.path = Path(path).expanduser() if path is not None else None
        self.images = Path(images).expanduser() if images is not None else None
        if self.path is not None and not self.path.exists():
            raise ValueError(f"{what}: dataset.path={path!r} does not exist")
        if self.images is not None and not self.images.is_dir():
            raise ValueError(f"{what}: dataset.images={images!r} is not a folder")
        self.source = source or self._infer_source()
        if self.source not in SOURCES:
            raise ValueError(f"{what}: dataset.source must be one of {', '.join(SOURCES)}; got {source!r}")
        if self.source != "hub" and self.path is None:
            raise ValueError(f"{what}: source={self.source} needs dataset.path=<file or folder>")
        self.hf_id = hf_id or self.hf_id
        self.config = config if config is not None else self.hf_config
        self.split = split or self.hf_split
        self.revision, self.cache_dir = revision, cache_dir
        self.categories = [categories] if isinstance(categories, str) else (list(categories) if categories else None)
        self.limit = optional_int("dataset.limit", limit, 0, MAX_LIMIT)
        self.seed = optional_int("dataset.seed", seed, 0, 2**32 - 1)
        self.max_image_pixels = optional_int("dataset.max_image_pixels", max_image_pixels, 1, MAX_IMAGE_PIXELS)
        self._rows: ParquetRows | HubRows | None = None
        index = {"hub": self._index_hub, "parquet": self._index_parquet, "release": self._index_release}
        items = index[self.source]()
        if self.categories is not None:
            items = self._only(items, set(self.categories))
        if not items:
            raise ValueError(f"{what}: no questions found ({self.source} at {self.path or self.hf_id})")
        self.items = [items[i] for i in select(len(items), self.limit, self.seed)]

    # --- what a benchmark folder says -----------------------------------------------------------
    def image_key(self, row: dict[str, Any]) -> str:
        """Which image a hub row shows (rows with the same key share one encoding)."""
        raise NotImplementedError

    def questions(self, row: dict[str, Any]) -> list[Question]:
        """The question(s) a hub row asks (MMBench: its circular variants)."""
        raise NotImplementedError

    def index_release(self, path: Path) -> list[ImageItem]:
        """Items from the official release files at `path` (and `self.images`)."""
        raise ValueError(f"{self.what}: {self.release_help}")

    # --- the three sources ------------------------------------------------------------------------
    def _infer_source(self) -> str:
        if self.path is None:
            return "hub"
        if self.path.is_file() and self.path.suffix == ".parquet":
            return "parquet"
        if self.path.is_dir() and (any(self.path.glob("*.parquet")) or any(self.path.glob("*/*.parquet"))):
            return "parquet"
        return "release"

    def _only(self, items: list[ImageItem], wanted: set[str]) -> list[ImageItem]:
        out = []
        for it in items:
            kept = [q for q in it.questions if q.category in wanted]
            if kept:
                out.append(it._replace(questions=kept, category=_one_category(kept)))
        return out

    def _index_rows(self, rows: ParquetRows | HubRows) -> list[ImageItem]:
        self._rows = rows
        grouped: dict[str, list[Question]] = {}
        first: dict[str, tuple[int, int]] = {}
        row: Row
        digests = rows.image_digests() if self.key_by_image_bytes else None
        for n, row in enumerate(rows.text_columns()):
            fi, ri, values = row
            if digests is not None:
                values["image_digest"] = digests[n]
            key = self.image_key(values)
            first.setdefault(key, (fi, ri))
            grouped.setdefault(key, []).extend(self.questions(values))
        return [ImageItem(key, _one_category(qs), qs, first[key]) for key, qs in grouped.items()]

    def _index_parquet(self) -> list[ImageItem]:
        assert self.path is not None
        files = parquet_files(self.path, self.split, self.config)
        return self._index_rows(ParquetRows(files, self.required, self.optional, what=f"{self.what} parquet"))

    def _index_hub(self) -> list[ImageItem]:
        local = (f"use a local copy instead: dataset.path=<folder of {self.hf_id} parquet files> or "
                 f"dataset.source=release dataset.path=<the official release files>")
        ds = load_hub(self.hf_id, self.config, self.split, self.revision, self.cache_dir, self.what, local)
        return self._index_rows(HubRows(ds, self.required, self.optional, what=f"hub {self.hf_id}"))

    def _index_release(self) -> list[ImageItem]:
        assert self.path is not None
        return self.index_release(self.path)

    # --- Dataset API --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_labels(self) -> bool:
        return False

    def params(self) -> dict[str, Any]:
        return {
            "source": self.source, "path": str(self.path) if self.path else None,
            "images": str(self.images) if self.images else None, "hf_id": self.hf_id, "config": self.config,
            "split": self.split, "revision": self.revision, "categories": self.categories, "limit": self.limit,
            "seed": self.seed, "n": len(self.items), "n_questions": sum(len(it.questions) for it in self.items),
        }

    def fingerprint(self) -> str:
        """hub/parquet: the rows' files, sizes and row counts (the `datasets` fingerprint);
        release: size and modification time of the release files and of every image read."""
        if self._rows is not None:
            return digest(self._rows.fingerprint())
        assert self.path is not None
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.rglob("*") if p.is_file()
                                                               and p.suffix.lower() in (".json", ".jsonl", ".tsv"))
        images = sorted({str(it.where) for it in self.items if isinstance(it.where, Path)})
        return digest([file_entries(Path("/"), [str(f) for f in files]), file_entries(Path("/"), images)])

    def __getitem__(self, index: int) -> Sample:
        image_id, category, questions, where = self.items[index]
        path: Path | None = None
        if isinstance(where, Path):
            loader = partial(open_image, where, name=f"{image_id} ({where})", max_pixels=self.max_image_pixels)
            path = where
        elif isinstance(where, bytes):
            loader = partial(open_image, where, name=image_id, max_pixels=self.max_image_pixels)
        else:
            assert self._rows is not None
            fi, ri = where
            name = f"{image_id} ({self._rows.source(fi)} row {ri})"
            try:
                data = self._rows.image_bytes(fi, ri)
            except Exception as exc:  # noqa: BLE001 - a damaged row is this image's error row
                loader = partial(raise_error, ImageLoadError(name, "unreadable", f"{type(exc).__name__}: {exc}"))
            else:
                loader = partial(open_image, data, name=name, max_pixels=self.max_image_pixels)
        return Sample(id=image_id, path=path, category=category, questions=list(questions), loader=loader)


def _one_category(questions: list[Question]) -> str | None:
    cats = {q.category for q in questions}
    return cats.pop() if len(cats) == 1 else None


__all__ = ["SOURCES", "BenchmarkDataset", "ImageItem"]
