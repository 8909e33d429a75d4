"""DocVQA's ANLS (average normalised Levenshtein similarity) as lmms-eval scores it (`api/metrics.py`
`anls`, threshold 0.5, best over the answers). Facts, worked examples and VLMEvalKit's variant:
docs/benchmark_scoring.md §3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.benchmarks.frames import per_question, percent_by_category
from harness.benchmarks.textvqa.scoring import answers_list


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1), one row at a time."""
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, char_b in enumerate(b, start=1):
        current = [j]
        for i, char_a in enumerate(a, start=1):
            current.append(previous[i - 1] if char_a == char_b else 1 + min(previous[i - 1], previous[i], current[-1]))
        previous = current
    return previous[-1]


def _canonical(text: str) -> str:
    """Lower-case, runs of whitespace -> one space, stripped."""
    return " ".join(text.strip().lower().split())


def normalized_distance(prediction: str, answer: str) -> float:
    """Levenshtein distance of the canonical strings over the longer RAW length. The raw lengths
    are lmms-eval's (`max(len(answer.upper()), len(pred.upper()))`): whitespace that the canonical
    form removes still counts, and `upper()` can lengthen a string ("ß" -> "SS")."""
    length = max(len(answer.upper()), len(prediction.upper()))
    return 0.0 if length == 0 else levenshtein(_canonical(answer), _canonical(prediction)) / length


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    """1 - the smallest normalised distance over the answers; below `threshold` it counts 0."""
    if not answers:
        raise ValueError("ANLS needs at least one ground-truth answer")
    similarity = 1 - min(normalized_distance(prediction, answer) for answer in answers)
    return 0.0 if similarity < threshold else similarity


def parse(response: str | None, fields: Mapping[str, Any] | None = None) -> str:
    """lmms-eval scores the stripped response (`Task.process_results`); nothing else is extracted."""
    return (response or "").strip()


def score(frame: pd.DataFrame) -> dict[str, float]:
    """`anls`: 100 x the mean ANLS over questions; `anls/<category>` per category; `n_questions`.
    `prediction` holds `parse()` outputs (None/NaN: the empty answer, as lmms-eval reads a None response),
    `answer` the JSON list of accepted answers."""
    values = per_question(frame, "DocVQA", lambda p, a: anls(p, answers_list(a)))
    return percent_by_category(values, frame, "anls")
