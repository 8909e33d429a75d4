"""Cross-run comparisons: pure function, loading from run folders, the report hook."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.metrics.compare import align, compare_embeddings, compare_groups, compare_runs
from harness.metrics.quality import linear_cka, mutual_knn
from harness.metrics.run_quality import quality_records, quality_table
from harness.pipeline.store import RunStore
from harness.types import Record

IDS = [f"img{i:02d}" for i in range(20)]


def _emb(seed: int, d: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(IDS), d))


def test_align_intersects_and_orders():
    x = _emb(0)
    ids, aligned = align({"a": (IDS, x), "b": (IDS[::-1][:15], x[::-1][:15])})
    assert ids == sorted(IDS[5:])
    np.testing.assert_array_equal(aligned["a"], aligned["b"])
    with pytest.raises(ValueError, match="share no image"):
        align({"a": (IDS[:5], x[:5]), "b": (IDS[5:], x[5:])})
    with pytest.raises(ValueError, match="repeated"):
        align({"a": (IDS[:2] + IDS[:1], x[:3]), "b": (IDS, x)})


def test_compare_embeddings_pairs_and_stability():
    x = _emb(0)
    q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(6, 6)))
    runs = {"r1": (IDS, x), "r2": (IDS[::-1], (x @ q)[::-1]), "r3": (IDS, _emb(1, 4))}
    meta = {
        "r1": {"encoder": "clip", "encoder_size": "tiny", "weights": "random", "strategy": "resize"},
        "r2": {"encoder": "clip", "encoder_size": "tiny", "weights": "random", "strategy": "anyres"},
        "r3": {"encoder": "intern", "encoder_size": "tiny", "weights": "random", "strategy": "resize"},
    }
    table = compare_embeddings(runs, meta, k=5).set_index(["run_a", "run_b"])
    assert len(table) == 3
    r12 = table.loc[("r1", "r2")]
    assert r12["comparison"] == "cross-strategy"
    assert r12["linear_cka"] == pytest.approx(1.0) and r12["mutual_knn"] == 1.0
    assert r12["stability_mean"] == pytest.approx(float(np.mean(
        np.sum(x * (x @ q), 1) / np.linalg.norm(x, axis=1) ** 2)))
    r13 = table.loc[("r1", "r3")]
    assert r13["comparison"] == "cross-encoder" and np.isnan(r13["stability_mean"])
    assert r13["linear_cka"] == pytest.approx(linear_cka(x, _emb(1, 4)))
    assert r13["mutual_knn"] == pytest.approx(mutual_knn(x, _emb(1, 4), k=5))
    assert r13["encoder_a"] == "clip" and r13["encoder_b"] == "intern"
    reseeded = {**meta, "r2": {**meta["r2"], "seed": 1}}  # another random initialisation
    assert compare_embeddings(runs, reseeded, k=5).loc[0, "comparison"] == "cross-encoder"


def _write_run(root, run_id: str, strategy: str, emb: np.ndarray, ids: list[str], labels: list[str],
               dataset_params: str = "{}") -> None:
    ident = {"run_id": run_id, "study": "t", "encoder": "clip", "encoder_size": "tiny", "weights": "random",
             "strategy": strategy, "strategy_params": f'{{"s": "{strategy}"}}',
             "dataset": "synthetic", "dataset_params": dataset_params}
    records = [Record(kind="image", identity=ident, image_id=i, values={"label": lab}) for i, lab in zip(
        ids, labels, strict=True)]
    records.append(Record(kind="run", identity=ident, values={"n_images": len(ids), "visual_tokens_mean": 1.0,
                                                               "encode_p50_ms": 1.0}))
    records += quality_records(emb, labels, ident)
    RunStore(root / run_id).write(records, {"study": "t"}, (ids, emb.astype(np.float32)))


def test_compare_runs_and_report_hook(tmp_path):
    labels = ["a", "b"] * 10
    x = _emb(0)
    _write_run(tmp_path / "runs", "r1", "resize", x, IDS, labels)
    _write_run(tmp_path / "runs", "r2", "native", 2 * x[:12], IDS[:12], labels[:12])
    frame = compare_runs([tmp_path / "runs" / "r1", tmp_path / "runs" / "r2"])
    assert frame.loc[0, "n_images"] == 12 and frame.loc[0, "stability_mean"] == pytest.approx(1.0, abs=1e-6)
    assert frame.loc[0, "mutual_knn_k"] == 10
    assert len(compare_groups([tmp_path / "runs" / "r1"])) == 0

    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    compare = pd.read_csv(tmp_path / "out" / "tables" / "compare.csv")
    assert compare[["run_a", "run_b", "comparison"]].values.tolist() == [["r1", "r2", "cross-strategy"]]
    quality = pd.read_parquet(tmp_path / "out" / "tables" / "quality.parquet").set_index("run_id")
    assert set(quality.index) == {"r1", "r2"}
    assert "knn_accuracy_k10" in quality.columns and "knn_accuracy_k20" not in quality.columns  # skipped: n=20
    assert quality.loc["r2", "effective_rank"] == pytest.approx(
        next(r.values["value"] for r in quality_records(2 * x[:12], labels[:12], {}) if r.values["metric"] ==
             "effective_rank"), rel=1e-5)
    assert (tmp_path / "out" / "tables" / "quality.md").exists()
    assert len(quality_table(pd.DataFrame({"kind": ["run"]}))) == 0


def test_compare_groups_skips_groups_without_a_pair(tmp_path):
    """Per dataset: a group of one run and a group whose runs share no image are left out
    (the loaders still raise for direct callers); the valid group is compared."""
    labels = ["a", "b"] * 10
    x = _emb(0)
    runs = tmp_path / "runs"
    _write_run(runs, "ok1", "resize", x, IDS, labels)
    _write_run(runs, "ok2", "native", 2 * x, IDS, labels)
    _write_run(runs, "alone", "resize", x, IDS, labels, dataset_params='{"n": 1}')
    _write_run(runs, "left", "resize", x[:10], IDS[:10], labels[:10], dataset_params='{"n": 2}')
    _write_run(runs, "right", "native", x[10:], IDS[10:], labels[10:], dataset_params='{"n": 2}')
    dirs = [runs / name for name in ("ok1", "alone", "left", "ok2", "right")]
    frame = compare_groups([*dirs, runs / "ok1"])  # a folder listed twice is one run
    assert frame[["run_a", "run_b", "comparison"]].values.tolist() == [["ok1", "ok2", "cross-strategy"]]
    assert frame.loc[0, "n_images"] == 20
    with pytest.raises(ValueError, match="share no image"):
        compare_runs([runs / "left", runs / "right"])
    with pytest.raises(ValueError, match="at least 2 runs"):
        compare_runs([runs / "alone"])
