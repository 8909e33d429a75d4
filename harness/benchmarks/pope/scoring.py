"""POPE's metrics over parsed predictions, overall and per setting (`metric/<category>`), as
fractions (both tools print fractions).

With TP = yes predicted for a yes, FP = yes for a no, FN = *no* for a yes (lmms-eval's
aggregations; a prediction that is neither yes nor no is only wrong, in no count):
accuracy = correct / questions, precision = TP / (TP + FP), recall = TP / (TP + FN),
F1 = 2PR / (P + R) (0 when a denominator is 0, as lmms-eval; the release's evaluate.py would
divide by zero), yes_ratio = yes predictions / questions (the release's and the paper's;
lmms-eval's `pope_yes_ratio` is the share of yes in the ground truth, which is 0.5 on POPE).
"""

from __future__ import annotations

import pandas as pd


def _ratio(a: int, b: int) -> float:
    return a / b if b > 0 else 0.0


def metrics(predictions: pd.Series, answers: pd.Series) -> dict[str, float]:
    """The five figures of one set of questions."""
    pred = predictions.astype(str)
    gt = answers.astype(str).str.lower().str.strip()
    bad = sorted(set(gt) - {"yes", "no"})
    if bad:
        raise ValueError(f"POPE ground truth must be yes or no; got {bad}")
    tp = int(((pred == "yes") & (gt == "yes")).sum())
    fp = int(((pred == "yes") & (gt == "no")).sum())
    fn = int(((pred == "no") & (gt == "yes")).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": float((pred == gt).mean()), "precision": precision, "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall) if precision + recall > 0 else 0.0,
        "yes_ratio": float((pred == "yes").mean()),
    }


def score(frame: pd.DataFrame) -> dict[str, float]:
    """Overall figures (`accuracy`, ...) and per category (`accuracy/adversarial`, ...)."""
    out = metrics(frame["prediction"], frame["answer"])
    for category, rows in frame.groupby("category", sort=True):
        out.update({f"{k}/{category}": v for k, v in metrics(rows["prediction"], rows["answer"]).items()})
    return out
