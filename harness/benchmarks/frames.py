"""What every open-answer benchmark's `score` does with its frame of question rows: check the
columns, score each question from its prediction and ground truth, average in percent overall
and per category. The per-question rule (VQA accuracy, ANLS, relaxed accuracy) is the
benchmark's own (its `scoring.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.benchmarks.base import FRAME_COLUMNS as REQUIRED


def per_question(frame: pd.DataFrame, benchmark: str, rule: Callable[[str, Any], float]) -> pd.Series:
    """`rule(prediction, answer)` of every row (a missing prediction, None/NaN, is the empty
    answer, as lmms-eval reads a None response), after checking the frame has what scoring needs."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{benchmark} scoring needs columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{benchmark} scoring got no predictions")
    return pd.Series([float(rule(str(p), a)) for p, a in zip(frame["prediction"].fillna(""), frame["answer"],
                                                            strict=True)], index=frame.index, dtype=float)


def percent_by_category(values: pd.Series, frame: pd.DataFrame, metric: str) -> dict[str, float]:
    """`metric`: 100 x the mean over every question, `<metric>/<category>` per category, and
    `n_questions`."""
    result = {metric: 100.0 * float(values.mean()), "n_questions": float(len(frame))}
    for category, group in values.groupby(frame["category"]):
        result[f"{metric}/{category}"] = 100.0 * float(group.mean())
    return result
