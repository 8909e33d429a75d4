"""Run-level quality rows: computed when the data supports them, skipped with a reason if not."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.quality import effective_rank, knn_accuracy, uniformity
from harness.metrics.run_quality import quality_records


def _by_metric(records):
    return {(r.values["metric"], r.values.get("k")): r for r in records}


def test_labelled_run_gets_all_rows():
    rng = np.random.default_rng(0)
    labels = [str(c) for c in np.repeat(["circle", "square", "triangle"], 9)]
    x = rng.normal(size=(27, 8)) + 3 * np.eye(8)[np.repeat([0, 1, 2], 9)]
    rows = _by_metric(quality_records(x, labels, {"run_id": "r"}))
    assert all(r.kind == "metric" and r.identity == {"run_id": "r"} for r in rows.values())
    assert rows[("uniformity", None)].values["value"] == pytest.approx(uniformity(x))
    assert rows[("effective_rank", None)].values["value"] == pytest.approx(effective_rank(x))
    knn10 = rows[("knn_accuracy", 10)]
    assert knn10.values["value"] == pytest.approx(knn_accuracy(x, labels, x, labels, k=10, exclude_self=True))
    assert knn10.values["protocol"] == "leave-one-out" and knn10.values["value"] > 0.9
    assert rows[("knn_accuracy", 20)].status == "ok"
    probe = rows[("linear_probe_accuracy", None)]
    assert probe.status == "ok" and probe.values["value"] > 0.9 and probe.values["n_folds"] == 3


def test_tiny_or_unlabelled_runs_are_skipped_with_reasons():
    rng = np.random.default_rng(1)
    rows = _by_metric(quality_records(rng.normal(size=(12, 4)), ["a", "b"] * 6, {}))
    assert rows[("knn_accuracy", 10)].status == "ok"
    skipped = rows[("knn_accuracy", 20)]
    assert skipped.status == "skipped" and "k+1=21" in skipped.message and np.isnan(skipped.values["value"])

    rows = _by_metric(quality_records(rng.normal(size=(30, 4)), [None] * 30, {}))
    assert rows[("effective_rank", None)].status == "ok"
    assert "no labels" in rows[("knn_accuracy", 10)].message
    assert "no labels" in rows[("linear_probe_accuracy", None)].message

    rows = _by_metric(quality_records(rng.normal(size=(30, 4)), ["same"] * 30, {}))
    assert "at least 2 classes" in rows[("linear_probe_accuracy", None)].message

    rows = _by_metric(quality_records(rng.normal(size=(1, 4)), ["a"], {}))
    assert all(r.status == "skipped" for r in rows.values())
    rows = _by_metric(quality_records(np.zeros((0, 0)), [], {}))
    assert "needs at least 2" in rows[("uniformity", None)].message
