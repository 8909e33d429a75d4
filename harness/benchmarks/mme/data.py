"""MME (Fu et al., arXiv:2306.13394) from the hub copy `lmms-lab/MME`, a local folder of its
parquet files, or the original release folders.

One Sample per image: id `<category>/<file name>` (the hub's `question_id`; file names repeat
across subtasks), `category` = label = subtask, and its two (question, Yes|No) pairs grouped by
image id, never by row order (Yes first, as the official eval tool lists them). Images stay
encoded until a worker asks for one: parquet rows are indexed once from the small text columns
and image bytes are read one row group at a time, so memory does not grow with the dataset.
"""

from __future__ import annotations

import os
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from harness.benchmarks.mme.subtasks import SUBTASKS, group_of
from harness.benchmarks.rows import HubRows, ParquetRows, raise_error
from harness.bounds import optional_int
from harness.data import DATASETS
from harness.data.base import MAX_IMAGE_PIXELS, Dataset, digest, file_entries
from harness.data.images import IMAGE_EXTENSIONS, ImageLoadError, open_image
from harness.data.selection import MAX_LIMIT, select
from harness.types import Question, Sample

SOURCES = ("hub", "parquet", "release")


class MMEItem(NamedTuple):
    """One MME image: its id (`<subtask>/<file name>`), subtask, its (question, Yes|No) pairs
    (Yes first), and where its pixels are (a file, or (file index, row index) of the rows)."""

    question_id: str
    category: str
    questions: list[tuple[str, str]]
    where: Path | tuple[int, int]


TEXT_COLUMNS = ("question_id", "question", "answer", "category")


def _pair(image_id: str, rows: list[tuple[str, str]], where: str) -> list[tuple[str, str]]:
    """The image's two questions, Yes first; anything else is a broken copy of MME."""
    answers = sorted(a.strip().capitalize() for _, a in rows)
    if answers != ["No", "Yes"]:
        raise ValueError(
            f"MME {where}: image {image_id!r} has answers {[a for _, a in rows]}; expected one Yes and one No"
        )
    return sorted(((q.strip(), a.strip().capitalize()) for q, a in rows), key=lambda qa: qa[1] != "Yes")


def _release_root(path: Path) -> Path:
    """The folder that holds the subtask folders: `path` itself or up to two levels below it
    (`MME_Benchmark_release_version/MME_Benchmark/<subtask>/`)."""
    frontier = [path]
    for _ in range(3):
        for folder in frontier:
            if any((folder / c).is_dir() for c in SUBTASKS):
                return folder
        frontier = sorted(p for f in frontier for p in f.iterdir() if p.is_dir())
    raise ValueError(f"MME release: no subtask folder ({', '.join(SUBTASKS)}) in {path} or two levels below")


def _read_pairs(txt: Path) -> list[tuple[str, str]]:
    lines = [ln for ln in txt.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    pairs = []
    for ln in lines:
        question, sep, answer = ln.rpartition("\t")
        if not sep:
            raise ValueError(f"MME release: {txt}: line {ln!r} is not 'question<TAB>Yes|No'")
        pairs.append((question, answer))
    return pairs


@DATASETS.register("mme")
class MME(Dataset):
    benchmark = "mme"

    def __init__(
        self,
        source: str | None = None,
        path: str | None = None,
        hf_id: str = "lmms-lab/MME",
        split: str = "test",
        revision: str | None = None,
        cache_dir: str | None = None,
        categories: list[str] | None = None,
        limit: int | None = None,
        seed: int | None = None,
        max_image_pixels: int | None = None,
    ) -> None:
        if categories is not None:
            if isinstance(categories, str):
                categories = [categories]
            unknown = [c for c in categories if c not in SUBTASKS]
            if unknown:
                raise ValueError(f"MME: unknown categories {unknown}; valid: {', '.join(SUBTASKS)}")
        self.categories = list(categories) if categories is not None else None
        limit = optional_int("dataset.limit", limit, 0, MAX_LIMIT)
        seed = optional_int("dataset.seed", seed, 0, 2**32 - 1)
        self.path = Path(path).expanduser() if path is not None else None
        self.source = source or self._infer_source()
        if self.source not in SOURCES:
            raise ValueError(f"MME: source must be one of {', '.join(SOURCES)}; got {source!r}")
        if self.source != "hub" and self.path is None:
            raise ValueError(f"MME: source={self.source} needs dataset.path=<folder>")
        if self.path is not None and not self.path.exists():
            raise ValueError(f"MME: dataset.path={path!r} does not exist")
        self.hf_id, self.split, self.revision, self.cache_dir = hf_id, split, revision, cache_dir
        self.limit, self.seed = limit, seed
        self.max_image_pixels = optional_int("dataset.max_image_pixels", max_image_pixels, 1, MAX_IMAGE_PIXELS)
        self._rows: ParquetRows | HubRows | None = None
        # Each item: (id, category, questions, where) with where = (file index, row) or a path.
        items = {"hub": self._index_hub, "parquet": self._index_parquet, "release": self._index_release}[self.source]()
        if self.categories is not None:
            wanted = set(self.categories)
            items = [it for it in items if it.category in wanted]
        if not items:
            raise ValueError(f"MME: no images found ({self.source} at {self.path or self.hf_id})")
        self.items = [items[i] for i in select(len(items), limit, seed)]

    def _infer_source(self) -> str:
        if self.path is None:
            return "hub"
        if self.path.is_file() and self.path.suffix == ".parquet":
            return "parquet"
        if self.path.is_dir() and (any(self.path.glob("*.parquet")) or any(self.path.glob("data/*.parquet"))):
            return "parquet"
        return "release"

    # -- the three sources -------------------------------------------------------------------

    def _index_rows(self, rows: ParquetRows | HubRows, where: str) -> list[MMEItem]:
        grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
        first: dict[str, tuple[int, int]] = {}
        category: dict[str, str] = {}
        for fi, ri, row in rows.text_columns():
            qid = row["question_id"]
            grouped[qid].append((row["question"], row["answer"]))
            first.setdefault(qid, (fi, ri))
            if category.setdefault(qid, row["category"]) != row["category"]:
                raise ValueError(f"MME {where}: image {qid!r} is in two categories")
        self._rows = rows
        # Order of first appearance in the files, so that reading walks row groups in order.
        order = sorted(first, key=first.get)
        return [MMEItem(qid, category[qid], _pair(qid, grouped[qid], where), first[qid]) for qid in order]

    def _index_parquet(self) -> list[MMEItem]:
        assert self.path is not None
        if self.path.is_file():
            files = [self.path]
        else:
            files = sorted(self.path.glob("data/*.parquet")) or sorted(self.path.glob("*.parquet"))
            split_files = [f for f in files if f.name.startswith(f"{self.split}-")]
            files = split_files or files
        return self._index_rows(ParquetRows(files, TEXT_COLUMNS, what="MME parquet"), f"parquet {self.path}")

    def _index_hub(self) -> list[MMEItem]:
        import datasets

        local = (
            "use a local copy instead: dataset.path=<folder of lmms-lab/MME parquet files (data/test-*.parquet)> "
            "or dataset.path=<MME_Benchmark_release_version folder>"
        )
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
            "HF_DATASETS_OFFLINE", "0"
        ).lower() in ("1", "true", "yes")
        try:
            ds = datasets.load_dataset(self.hf_id, split=self.split, revision=self.revision, cache_dir=self.cache_dir)
        except Exception as exc:
            why = "offline (HF_HUB_OFFLINE=1) and not in the cache" if offline else f"{type(exc).__name__}: {exc}"
            what = f"{self.hf_id!r} split {self.split!r}"
            raise ValueError(f"MME: cannot load {what} from the hub: {why}; {local}") from exc
        return self._index_rows(HubRows(ds, TEXT_COLUMNS, what=f"hub {self.hf_id}"), f"hub {self.hf_id}")

    def _index_release(self) -> list[MMEItem]:
        assert self.path is not None
        root = _release_root(self.path)
        items = []
        for category in SUBTASKS:
            folder = root / category
            if not folder.is_dir():
                continue
            if (folder / "images").is_dir() and (folder / "questions_answers_YN").is_dir():
                image_dir, text_dir = folder / "images", folder / "questions_answers_YN"
            else:
                image_dir = text_dir = folder
            texts = {p.stem: p for p in text_dir.glob("*.txt")}
            images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            missing = [p.name for p in images if p.stem not in texts]
            if missing:
                raise ValueError(f"MME release: {image_dir}: no questions (.txt) for {', '.join(missing[:5])}")
            for image in images:
                qid = f"{category}/{image.name}"
                pairs = _pair(qid, _read_pairs(texts[image.stem]), str(texts[image.stem]))
                items.append(MMEItem(qid, category, pairs, image))
        return items

    # -- Dataset API ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_labels(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {
            "source": self.source, "path": str(self.path) if self.path else None, "hf_id": self.hf_id,
            "split": self.split, "revision": self.revision, "categories": self.categories,
            "limit": self.limit, "seed": self.seed, "n": len(self.items),
        }

    def fingerprint(self) -> str:
        """parquet: files, sizes and rows; release: each file's relative path, size and
        modification time; hub: the `datasets` cache's own fingerprint of the split."""
        if isinstance(self._rows, ParquetRows):
            files = self._rows.files
            content: Any = [(f.name, f.stat().st_size, starts[-1])
                            for f, starts in zip(files, self._rows.row_group_starts, strict=True)]
        elif isinstance(self._rows, HubRows):
            content = [self.hf_id, self.split, self.revision, getattr(self._rows.ds, "_fingerprint", None),
                       len(self._rows.ds)]
        else:
            assert self.path is not None
            root = _release_root(self.path)
            content = file_entries(root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                                                if p.is_file()))
        return digest(content)

    def __getitem__(self, index: int) -> Sample:
        qid, category, questions, where = self.items[index]
        meta = {"group": group_of(category), "file_name": qid.split("/", 1)[1]}
        if isinstance(where, Path):
            loader = partial(open_image, where, name=f"{qid} ({where})", max_pixels=self.max_image_pixels)
            path: Path | None = where
        else:
            fi, ri = where
            source = self._rows.files[fi] if isinstance(self._rows, ParquetRows) else self.hf_id
            name = f"{qid} ({source} row {ri})"
            try:
                data = self._rows.image_bytes(fi, ri)  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - a damaged row is this image's error row
                error = ImageLoadError(name, "unreadable", f"{type(exc).__name__}: {exc}")
                loader = partial(raise_error, error)
            else:
                loader = partial(open_image, data, name=name, max_pixels=self.max_image_pixels)
            path = None
        asked = [Question(qid, q, (a,), category) for q, a in questions]
        return Sample(id=qid, path=path, label=category, category=category, questions=asked,
                      meta=meta, loader=loader)
