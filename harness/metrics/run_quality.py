"""Run-level embedding-quality rows: what one run's pooled embeddings support on their own.

Label-free measures (uniformity, effective rank, RankMe) for any run with at least 2 images;
with labels (e.g. the synthetic shapes), leave-one-out weighted kNN accuracy and a nested
cross-validated linear probe. A measure the data cannot support becomes a row with status
`skipped` and the reason, never a meaningless number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.quality import effective_rank, knn_accuracy, linear_probe_accuracy, rankme, uniformity
from harness.types import Record

KNN_KS = (10, 20)
KNN_TEMPERATURE = 0.07
PROBE_FOLDS = 3


def _row(identity: dict[str, Any], metric: str, value: float | None, reason: str = "", **params: Any) -> Record:
    values = {"metric": metric, "value": float("nan") if value is None else float(value), **params}
    return Record(kind="metric", identity=identity, status="skipped" if reason else "ok", message=reason, values=values)


def quality_records(
    embeddings: np.ndarray | None, labels: Sequence[str | None], identity: dict[str, Any],
) -> list[Record]:
    """Metric rows for one run; `labels` aligned with the embedding rows (None = unlabelled)."""
    x = np.zeros((0, 0)) if embeddings is None else np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    rows: list[Record] = []
    label_free = [("uniformity", lambda: uniformity(x, t=2), {"t": 2}),
                  ("effective_rank", lambda: effective_rank(x), {}),
                  ("rankme", lambda: rankme(x, eps=1e-7), {"eps": 1e-7})]
    for name, fn, params in label_free:
        if n < 2:
            rows.append(_row(identity, name, None, f"needs at least 2 embeddings; the run has {n}", n=n, **params))
        elif not np.any(x):
            rows.append(_row(identity, name, None, "all embeddings are zero", n=n, **params))
        else:
            rows.append(_row(identity, name, fn(), n=n, **params))

    known = [i for i, lab in enumerate(labels) if lab is not None] if len(labels) == n else []
    y = np.asarray([str(labels[i]) for i in known])
    classes, counts = np.unique(y, return_counts=True)
    why_not = ""
    if not known:
        why_not = "the dataset gives no labels"
    elif len(classes) < 2:
        why_not = f"needs at least 2 classes; labels have {len(classes)}"
    xl = x[known]
    for k in KNN_KS:
        params = {"k": k, "temperature": KNN_TEMPERATURE, "protocol": "leave-one-out", "n": len(known)}
        reason = why_not or (f"needs at least k+1={k + 1} labelled embeddings; got {len(known)}"
                             if len(known) < k + 1 else "")
        value = None if reason else knn_accuracy(xl, y, xl, y, k=k, temperature=KNN_TEMPERATURE, exclude_self=True)
        rows.append(_row(identity, "knn_accuracy", value, reason, **params))
    params = {"protocol": f"nested stratified {PROBE_FOLDS}-fold CV, seed 0", "n_folds": PROBE_FOLDS, "n": len(known)}
    reason = why_not or (f"every class needs {PROBE_FOLDS} labelled embeddings; smallest has {counts.min()}"
                         if counts.min() < PROBE_FOLDS else "")
    if reason:
        rows.append(_row(identity, "linear_probe_accuracy", None, reason, **params))
    else:
        probe = linear_probe_accuracy(xl, y, n_folds=PROBE_FOLDS, seed=0)
        rows.append(_row(identity, "linear_probe_accuracy", probe["accuracy"], weight_decay=probe["weight_decay"],
                         accuracy_std=probe["accuracy_std"], **params))
    return rows


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """The table column of each metric row: its name, kNN suffixed with `_k<k>`."""
    k = rows["k"] if "k" in rows.columns else pd.Series(np.nan, index=rows.index)
    return [m if kk != kk else f"{m}_k{int(kk)}" for m, kk in zip(rows["metric"], k, strict=True)]


def quality_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per run, one column per measured quality metric (kNN columns suffixed with
    `_k<k>`); skipped metrics are absent (NaN). Empty when no run wrote metric rows."""
    if "metric" not in records.columns or "kind" not in records.columns:
        return pd.DataFrame()
    rows = records[(records["kind"] == "metric") & (records["status"] == "ok")].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["column"] = metric_columns(rows)
    keys = [c for c in ("run_id", "encoder", "encoder_size", "weights", "strategy", "dataset") if c in rows.columns]
    table = rows.pivot_table(index=keys, columns="column", values="value", aggfunc="first").reset_index()
    table.columns.name = None
    return table
