"""Reports that survive damage and never mix configurations: runs written by the store from
test-made records (no model), then damaged, relabelled or spread over several folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.identity import new_run_id
from harness.store import RECORDS, RunStore
from harness.types import Record


def fake_run(
    runs: Path, study: str, chash: str, *, encoder: str = "clip_vit_l14_336", strategy: str = "resize",
    pp: dict | None = None, dataset_params: dict | None = None, tokens: float = 576.0, latency: float = 10.0,
    n: int = 6, seed: int = 0, values: dict | None = None,
) -> Path:
    """A complete run folder as `RunStore.write` leaves it: image rows, one run row, embeddings."""
    pp = pp or {}
    run_id = new_run_id(chash)
    ident = {"run_id": run_id, "study": study, "config_hash": chash, "encoder": encoder, "encoder_size": "tiny",
             "weights": "random", "strategy": strategy, "strategy_params": json.dumps(pp, sort_keys=True),
             "dataset": "synthetic", "dataset_params": json.dumps(dataset_params or {"num_images": n}),
             "device": "cpu", "dtype": "float32", "seed": seed, "batch_views": 8,
             **{f"pp_{k}": v for k, v in pp.items()}}
    ids = [f"img{i}" for i in range(n)]
    recs = [Record("image", ident, image_id=i, values={"visual_tokens": tokens}) for i in ids]
    recs.append(Record("run", ident, values={"n_images": n, "n_ok": n, "n_errors": 0, "visual_tokens_mean": tokens,
                                             "views_total": n, "encode_p50_ms": latency, **(values or {})}))
    rng = np.random.default_rng(abs(hash(chash)) % 2**32)
    run_dir = runs / study / run_id
    RunStore(run_dir).write(recs, {"study": study}, (ids, rng.normal(size=(n, 4)).astype(np.float32)))
    return run_dir


def test_damaged_runs_are_skipped_naming_their_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated records.parquet and a garbage embeddings.npz each cost their own run only:
    one line names each folder, every other table (study, compare, summary) is built."""
    runs = tmp_path / "runs"
    good = [fake_run(runs, "s", f"{i:012x}", tokens=100.0 * (i + 1)) for i in range(3)]
    truncated = fake_run(runs, "s", "bad000000001")
    garbage = fake_run(runs, "s", "bad000000002")
    data = (truncated / RECORDS).read_bytes()
    (truncated / RECORDS).write_bytes(data[: len(data) // 2])
    (garbage / "embeddings.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    assert report.main([str(runs), "--out", str(tmp_path), "--tables-only"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "damaged" in line]
    assert len(lines) == 2
    assert any(str(truncated) in line and RECORDS in line for line in lines)
    assert any(str(garbage) in line and "embeddings.npz" in line for line in lines)
    table = pd.read_parquet(tmp_path / "tables" / "s.parquet")
    assert sorted(table["run_dir"]) == sorted(map(str, good))
    compare = pd.read_parquet(tmp_path / "tables" / "s_compare.parquet")
    assert len(compare) == 3  # the three good runs, pairwise
    assert len(pd.read_parquet(tmp_path / "tables" / "summary.parquet")) == 3


def test_report_writes_next_to_the_runs_and_keeps_other_studies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness-report /other/runs/s1` from anywhere writes /other/tables (not ./results), and the
    cross-study tables still hold every study of /other/runs."""
    runs = tmp_path / "other" / "runs"
    a = [fake_run(runs, "s1", f"a{i:011x}") for i in range(2)]
    b = fake_run(runs, "s2", "b00000000000")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert report.main([str(runs / "s1"), "--tables-only"]) == 0
    tables = tmp_path / "other" / "tables"
    assert (tables / "s1.parquet").exists() and not (tables / "s2.parquet").exists()
    assert not (cwd / "results").exists()
    summary = pd.read_parquet(tables / "summary.parquet")
    assert sorted(summary["run_dir"]) == sorted(map(str, [*a, b]))
    assert sorted(summary["study"].unique()) == ["s1", "s2"]
    assert report.main([str(runs / "s1"), str(tmp_path), "--tables-only"]) == 2  # two places: --out needed


def test_tables_are_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, "s", "c00000000000")
    assert report.main([str(runs), "--tables-only"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    fake_run(runs, "s", "c00000000001")

    def broken(table: pd.DataFrame) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report, "to_latex", broken)
    with pytest.raises(OSError, match="disk full"):
        report.main([str(runs), "--tables-only"])
    after = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    assert after == before  # no half-new study table, no .part file
