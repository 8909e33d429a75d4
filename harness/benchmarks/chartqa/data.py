"""ChartQA test: the hub copy `lmms-lab/ChartQA` (split test; columns type (human_test |
augmented_test), question, answer, image: no ids, so rows whose image bytes are equal share the
image), a local copy of its parquet files, or the release folder `ChartQA Dataset/test`
(`test_human.json` and `test_augmented.json`, lists of {imgname, query, label}, charts in `png/`
or `dataset.images`). A question's id is its split and position in it; category = the split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.benchmarks.dataset import BenchmarkDataset, ImageItem
from harness.data import DATASETS
from harness.types import Question

RELEASE_FILES = {"test_human.json": "human_test", "test_augmented.json": "augmented_test"}


@DATASETS.register("chartqa")
class ChartQA(BenchmarkDataset):
    benchmark = "chartqa"
    hf_id = "lmms-lab/ChartQA"
    hf_split = "test"
    required = ("type", "question", "answer")
    key_by_image_bytes = True
    release_help = "the release is the folder with test_human.json, test_augmented.json and png/"

    def __init__(self, **kwargs: Any) -> None:
        self._counts: dict[str, int] = {}
        super().__init__(**kwargs)

    def image_key(self, row: dict[str, Any]) -> str:
        return str(row["image_digest"])

    def _question(self, category: str, question: Any, answer: Any) -> Question:
        n = self._counts[category] = self._counts.get(category, -1) + 1
        return Question(f"{category}/{n}", str(question), (str(answer),), category, fields={"type": category})

    def questions(self, row: dict[str, Any]) -> list[Question]:
        return [self._question(str(row["type"]), row["question"], row["answer"])]

    def index_release(self, path: Path) -> list[ImageItem]:
        files = [path / name for name in RELEASE_FILES if (path / name).is_file()] if path.is_dir() else [path]
        if not files or any(f.name not in RELEASE_FILES for f in files):
            raise ValueError(f"ChartQA release: no {' / '.join(RELEASE_FILES)} in {path}")
        images = self.images or (path if path.is_dir() else path.parent) / "png"
        grouped: dict[str, list[Question]] = {}
        for f in files:
            try:
                entries = json.loads(f.read_text(encoding="utf-8"))
                for e in entries:
                    q = self._question(RELEASE_FILES[f.name], e["query"], e["label"])
                    grouped.setdefault(str(e["imgname"]), []).append(q)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"ChartQA release: {f} is not a list of {{imgname, query, label}} ({exc})") from exc
        return [ImageItem(name, qs[0].category if len({q.category for q in qs}) == 1 else None, qs, images / name)
                for name, qs in grouped.items()]
