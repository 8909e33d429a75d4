"""POPE's questions: the hub copy `lmms-lab/POPE` (split test; columns id, question_id, question,
answer, image_source, image, category), a local copy of its parquet files, or the release
(AoiDragon/POPE `output/coco/coco_pope_{random,popular,adversarial}.json`, JSON lines
{question_id, image, text, label}) with the COCO val2014 images in `dataset.images`.
Questions about one image (the hub's `image_source`, the release's file name) share it, across
the three settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.benchmarks.dataset import BenchmarkDataset, ImageItem
from harness.data import DATASETS
from harness.types import Question

CATEGORIES = ("adversarial", "popular", "random")


def _question(category: str, question_id: Any, text: str, answer: str) -> Question:
    # question ids restart in each setting's file: the setting makes them unique
    return Question(f"{category}/{question_id}", str(text), (str(answer).strip().lower(),), category)


@DATASETS.register("pope")
class POPE(BenchmarkDataset):
    benchmark = "pope"
    hf_id = "lmms-lab/POPE"
    hf_split = "test"
    required = ("question_id", "question", "answer", "image_source", "category")
    release_help = "the release is coco_pope_<setting>.json files (dataset.path) + COCO val2014 (dataset.images)"

    def image_key(self, row: dict[str, Any]) -> str:
        return str(row["image_source"])

    def questions(self, row: dict[str, Any]) -> list[Question]:
        return [_question(str(row["category"]), row["question_id"], row["question"], row["answer"])]

    def index_release(self, path: Path) -> list[ImageItem]:
        files = [path] if path.is_file() else sorted(path.glob("coco_pope_*.json"))
        if not files:
            raise ValueError(f"POPE release: no coco_pope_<{'|'.join(CATEGORIES)}>.json in {path}")
        images = self.images or (path.parent if path.is_file() else path)
        grouped: dict[str, list[Question]] = {}
        for f in files:
            category = f.stem.rsplit("_", 1)[-1]
            if category not in CATEGORIES:
                raise ValueError(f"POPE release: {f.name} is not coco_pope_<{'|'.join(CATEGORIES)}>.json")
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    q = _question(category, row["question_id"], row["text"], row["label"])
                    grouped.setdefault(str(row["image"]), []).append(q)
                except (json.JSONDecodeError, KeyError) as exc:
                    raise ValueError(f"POPE release: {f}:{n}: not a {{question_id, image, text, label}} line "
                                     f"({type(exc).__name__}: {exc})") from exc
        return [ImageItem(name, qs[0].category if len({q.category for q in qs}) == 1 else None, qs, images / name)
                for name, qs in grouped.items()]
