"""TextVQA val: the hub copy `lmms-lab/textvqa` (split validation; columns image_id,
question_id, question, answers (10), ocr_tokens, image, ...), a local copy of its parquet files,
or the release `TextVQA_0.5.1_val.json` ({"data": [{question_id, image_id, question, answers,
...}]}) with its images `<image_id>.jpg` in `dataset.images` (default: `train_images/` beside
the json: the val images ship in train_val_images.zip). Questions share their `image_id`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.benchmarks.dataset import BenchmarkDataset, ImageItem
from harness.data import DATASETS
from harness.types import Question


def _question(row: dict[str, Any]) -> Question:
    fields = {"ocr_tokens": list(row["ocr_tokens"])} if row.get("ocr_tokens") is not None else {}
    return Question(str(row["question_id"]), str(row["question"]), tuple(str(a) for a in row["answers"]),
                    fields=fields)


@DATASETS.register("textvqa")
class TextVQA(BenchmarkDataset):
    benchmark = "textvqa"
    hf_id = "lmms-lab/textvqa"
    hf_split = "validation"
    required = ("image_id", "question_id", "question", "answers")
    optional = ("ocr_tokens",)
    release_help = "the release is TextVQA_0.5.1_val.json (dataset.path) + its images (dataset.images)"

    def image_key(self, row: dict[str, Any]) -> str:
        return str(row["image_id"])

    def questions(self, row: dict[str, Any]) -> list[Question]:
        return [_question(row)]

    def index_release(self, path: Path) -> list[ImageItem]:
        if not path.is_file():
            raise ValueError(f"TextVQA release: dataset.path must be TextVQA_0.5.1_val.json; got folder {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"TextVQA release: {path} is not {{\"data\": [...]}} JSON ({exc})") from exc
        images = self.images or path.parent / "train_images"
        grouped: dict[str, list[Question]] = {}
        for n, row in enumerate(data):
            missing = [k for k in self.required if k not in row]
            if missing:
                raise ValueError(f"TextVQA release: {path}: entry {n} has no {', '.join(missing)}")
            grouped.setdefault(str(row["image_id"]), []).append(_question(row))
        return [ImageItem(key, None, qs, images / f"{key}.jpg") for key, qs in grouped.items()]
