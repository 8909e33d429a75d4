"""DocVQA val: the hub copy `lmms-lab/DocVQA` (config DocVQA, split validation; columns
questionId, question, question_types, image, docId, ucsf_document_id, ucsf_document_page_no,
answers, data_split), a local copy of its parquet files, or the release `val_v1.0.json`
({"data": [{questionId, question, image: "documents/<page>.png", docId, answers, ...}]}) with the
page images relative to `dataset.images` (default: the json's folder). Questions about one page
(`<ucsf_document_id>_<page no>`, the release's file name) share it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.benchmarks.dataset import BenchmarkDataset, ImageItem
from harness.data import DATASETS
from harness.types import Question


def _question(row: dict[str, Any]) -> Question:
    fields = {"question_types": list(row["question_types"])} if row.get("question_types") is not None else {}
    return Question(str(row["questionId"]), str(row["question"]), tuple(str(a) for a in row["answers"]),
                    fields=fields)


@DATASETS.register("docvqa")
class DocVQA(BenchmarkDataset):
    benchmark = "docvqa"
    hf_id = "lmms-lab/DocVQA"
    hf_config = "DocVQA"
    hf_split = "validation"
    required = ("questionId", "question", "answers", "ucsf_document_id", "ucsf_document_page_no")
    optional = ("question_types", "docId")
    release_help = "the release is val_v1.0.json (dataset.path) with documents/ beside it (or dataset.images)"

    def image_key(self, row: dict[str, Any]) -> str:
        return f"{row['ucsf_document_id']}_{row['ucsf_document_page_no']}"

    def questions(self, row: dict[str, Any]) -> list[Question]:
        return [_question(row)]

    def index_release(self, path: Path) -> list[ImageItem]:
        if not path.is_file():
            raise ValueError(f"DocVQA release: dataset.path must be val_v1.0.json; got folder {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"DocVQA release: {path} is not {{\"data\": [...]}} JSON ({exc})") from exc
        images = self.images or path.parent
        grouped: dict[str, list[Question]] = {}
        for n, row in enumerate(data):
            missing = [k for k in ("questionId", "question", "answers", "image") if k not in row]
            if missing:
                raise ValueError(f"DocVQA release: {path}: entry {n} has no {', '.join(missing)}")
            grouped.setdefault(str(row["image"]), []).append(_question(row))
        return [ImageItem(Path(name).stem, None, qs, images / name) for name, qs in grouped.items()]
