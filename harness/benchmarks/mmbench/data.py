"""MMBench (English) dev: the hub copy `lmms-lab/MMBench` (config en, split dev; columns index,
question, hint, answer, A, B, C, D (E in some copies), category, L2-category, source, split,
comment, image), a local copy of its parquet files, or the release TSV (`MMBench_DEV_EN.tsv`:
the same columns, `image` base64, a circular copy's image may be the index of the row holding it).

Circular evaluation: a copy whose index is k * 1,000,000 + i asks question i with its options
rotated k times (VLMEvalKit's convention). When the data holds such copies they are used as
they are; when it holds only the originals, `scoring.circular_variants` makes them (off with
dataset.circular=false: each question once). Every copy of a question has the question's
`question_id` (its index modulo 1,000,000) and shows the same image, encoded once.
"""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from typing import Any

from harness.benchmarks.dataset import BenchmarkDataset, ImageItem
from harness.data import DATASETS
from harness.types import Question

LETTERS = ("A", "B", "C", "D", "E")
CIRCULAR = 1_000_000  # VLMEvalKit: index = circular_index * 1e6 + the original's index
FIELDS = ("hint", "L2-category", "l2-category", "source", "split", "comment")


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value).strip().lower() not in ("", "nan", "none")


def options_of(row: dict[str, Any]) -> dict[str, str]:
    """The row's options, letter -> text, in letter order (missing or `nan` letters left out)."""
    return {c: str(row[c]) for c in LETTERS if c in row and _present(row[c])}


def _question(row: dict[str, Any], options: dict[str, str], answer: str, index: int, circular_index: int,
              question: str | None = None) -> Question:
    fields = {k: (str(row[k]) if _present(row.get(k)) else None) for k in FIELDS if k in row}
    fields.update(index=index, circular_index=circular_index)
    return Question(str(index % CIRCULAR), str(question if question is not None else row["question"]), (answer,),
                    str(row["category"]), options=options, fields=fields)


@DATASETS.register("mmbench")
class MMBench(BenchmarkDataset):
    benchmark = "mmbench"
    hf_id = "lmms-lab/MMBench"
    hf_config = "en"
    hf_split = "dev"
    required = ("index", "question", "answer", "A", "B", "category")
    optional = ("C", "D", "E", *FIELDS)
    release_help = "the release is MMBench_DEV_EN.tsv (dataset.path), images base64 in it"

    def __init__(self, circular: bool = True, **kwargs: Any) -> None:
        self.circular = bool(circular)
        self._has_copies: bool | None = None
        super().__init__(**kwargs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "circular": self.circular}

    def image_key(self, row: dict[str, Any]) -> str:
        return str(int(row["index"]) % CIRCULAR)

    def questions(self, row: dict[str, Any]) -> list[Question]:
        index = int(row["index"])
        if index >= CIRCULAR or not self.circular:  # a copy in the data, or no circular evaluation
            if index >= CIRCULAR and not self.circular:
                return []
            return [_question(row, options_of(row), str(row["answer"]).strip(), index, index // CIRCULAR)]
        return self._variants(row, index)

    def _variants(self, row: dict[str, Any], index: int) -> list[Question]:
        """The original and, unless the data holds its copies, its rotations from `scoring`."""
        if self._has_copies:
            return [_question(row, options_of(row), str(row["answer"]).strip(), index, 0)]
        from harness.benchmarks.mmbench.scoring import circular_variants

        fields = {**{k: row.get(k) for k in ("question", "category", *FIELDS) if k in row},
                  "options": options_of(row), "answer": str(row["answer"]).strip(), "index": index}
        out = []
        for v in circular_variants(fields):
            k = int(v["circular_index"])
            out.append(_question(row, dict(v["options"]), str(v["answer"]), index + k * CIRCULAR, k,
                                 v.get("question")))
        return out

    def _index_rows(self, rows: Any) -> list[ImageItem]:
        self._has_copies = any(int(r["index"]) >= CIRCULAR for _, _, r in rows.text_columns())
        return super()._index_rows(rows)

    def index_release(self, path: Path) -> list[ImageItem]:
        import pandas as pd

        if not path.is_file() or path.suffix.lower() != ".tsv":
            raise ValueError(f"MMBench release: dataset.path must be the .tsv file; got {path}")
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        missing = [c for c in (*self.required, "image") if c not in table.columns]
        if missing:
            raise ValueError(f"MMBench release: {path}: no column(s) {', '.join(missing)}")
        rows = table.to_dict("records")
        for r in rows:
            r["index"] = int(r["index"])
        self._has_copies = any(r["index"] >= CIRCULAR for r in rows)
        encoded = {r["index"]: r["image"] for r in rows}
        grouped: dict[str, list[Question]] = {}
        pixels: dict[str, bytes] = {}
        for r in rows:
            key = self.image_key(r)
            grouped.setdefault(key, []).extend(self.questions(r))
            if key not in pixels:
                image = r["image"]
                if image.isdigit() and int(image) in encoded:  # a copy pointing at its original's row
                    image = encoded[int(image)]
                try:
                    pixels[key] = base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    pixels[key] = b""  # an empty image: that image's error row, the run goes on
        return [ImageItem(key, qs[0].category if qs else None, qs, pixels[key]) for key, qs in grouped.items() if qs]
