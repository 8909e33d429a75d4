"""ChartQA's relaxed accuracy as lmms-eval scores it (`tasks/chartqa/utils.py`, from Qwen-VL; the
rule of the ChartQA paper, arXiv:2203.10244 §5.1): a number within 5 % of a numeric answer is
right, anything else must match exactly up to case. Facts and worked examples:
docs/benchmark_scoring.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.benchmarks.frames import per_question

# The split a question belongs to, by its category: lmms-lab/ChartQA's `type` values
# (`human_test`, `augmented_test`) or the release files' names (test_human.json, test_augmented.json).
SPLITS = {"human_test": "human", "human": "human", "augmented_test": "augmented", "augmented": "augmented"}


def as_number(text: str) -> float | None:
    """The number a string states, as Python's float() reads it (so " 12", "1e3", "1_000",
    "inf" and "nan" are numbers; "1,000" and "$12" are not); a trailing "%" (any number of them)
    divides by 100. None when it is not a number."""
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correctness(prediction: str, target: str, tolerance: float = 0.05) -> bool:
    """Right when both are numbers and |prediction - target| / |target| <= tolerance; when either
    is not a number, or the target is 0 (no relative change exists), right when they are equal
    ignoring case (`lower()`, no strip)."""
    predicted, expected = as_number(prediction), as_number(target)
    if predicted is not None and expected:
        return abs(predicted - expected) / abs(expected) <= tolerance
    return prediction.lower() == target.lower()


def parse(response: str | None, fields: Mapping[str, Any] | None = None) -> str:
    """lmms-eval scores the stripped response (`Task.process_results`); nothing else is extracted."""
    return (response or "").strip()


def score(frame: pd.DataFrame) -> dict[str, float]:
    """lmms-eval's three figures in percent: `relaxed_overall`, and `relaxed_human_split` /
    `relaxed_augmented_split` over the questions whose category names that split (a split with no
    question is left out; lmms-eval counts every non-human question as augmented, here a category
    naming neither split counts in the overall figure only); `n_questions`. `answer` is one string;
    a missing prediction (None/NaN) is the empty answer, as lmms-eval reads a None response."""
    correct = per_question(frame, "ChartQA", lambda p, a: float(relaxed_correctness(p, str(a))))
    result = {"relaxed_overall": 100.0 * float(correct.mean()), "n_questions": float(len(frame))}
    split = frame["category"].map(SPLITS)
    for name in ("human", "augmented"):
        if (split == name).any():
            result[f"relaxed_{name}_split"] = 100.0 * float(correct[split == name].mean())
    return result
