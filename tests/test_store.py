"""The store publishes a run folder whole or not at all, and resume finds only complete ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.pipeline.store import (
    COMPLETE,
    FAILED,
    TMP_PREFIX,
    RunStore,
    completed_run,
    find_failed,
    find_runs,
    hash_of,
)
from harness.types import Record


def records(run_id: str) -> list[Record]:
    ident = {"run_id": run_id, "study": "s", "config_hash": hash_of(run_id)}
    return [Record("image", ident, "img0", values={"visual_tokens": 576}), Record("run", ident, values={"n_images": 1})]


def test_write_publishes_complete_folder(tmp_path: Path) -> None:
    run = tmp_path / "s" / "20260101T000000_000000Z-abc123"
    RunStore(run).write(records(run.name), {"seed": 0}, (["img0"], np.ones((1, 4), np.float32)))
    assert sorted(p.name for p in run.iterdir()) == [COMPLETE, "config.yaml", "embeddings.npz", "records.parquet"]
    assert not list(tmp_path.rglob(TMP_PREFIX + "*")) and not list(tmp_path.rglob("*.part"))
    assert find_runs(tmp_path) == [run] and completed_run(tmp_path / "s", "abc123") == run
    ids, emb = RunStore(run).embeddings()
    assert ids == ["img0"] and emb.shape == (1, 4)


def test_interrupted_write_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that dies midway (here: while writing the embeddings, after the records) leaves
    only a hidden tmp folder, which no reader and no resume lookup sees."""
    run = tmp_path / "s" / "20260101T000000_000000Z-abc123"

    def die(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(np, "savez", die)
        with pytest.raises(RuntimeError, match="killed"):
            RunStore(run).write(records(run.name), {"seed": 0}, (["img0"], np.ones((1, 4), np.float32)))
    assert (tmp_path / "s" / (TMP_PREFIX + run.name) / "records.parquet").exists()
    assert not run.exists()
    assert [p.name for p in (tmp_path / "s").iterdir()] == [TMP_PREFIX + run.name]
    (tmp_path / "s" / (TMP_PREFIX + run.name) / COMPLETE).write_text("")  # even with a stray marker inside
    assert find_runs(tmp_path) == [] and completed_run(tmp_path / "s", "abc123") is None
    # a later write of the same folder replaces the stale tmp folder
    RunStore(run).write(records(run.name), {"seed": 0})
    assert find_runs(tmp_path) == [run] and not (tmp_path / "s" / (TMP_PREFIX + run.name)).exists()


def test_failure_folder_is_found_as_failed_not_complete(tmp_path: Path) -> None:
    run = tmp_path / "s" / "20260101T000000_000000Z-abc123"
    rec = Record("run", {"run_id": run.name, "study": "s"}, status="error:oom", message="CUDA out of memory")
    RunStore(run).write_failure(rec, {"seed": 0}, "Traceback ...")
    assert (run / FAILED).exists() and not (run / COMPLETE).exists()
    assert find_failed(tmp_path) == [run] and find_runs(tmp_path) == []
    assert completed_run(tmp_path / "s", "abc123") is None  # resume retries it
    row = RunStore(run).records().iloc[0]
    assert (row["kind"], row["status"], row["message"]) == ("run", "error:oom", "CUDA out of memory")


def test_resume_lookup_takes_newest_complete_of_the_hash(tmp_path: Path) -> None:
    study = tmp_path / "s"
    for name in ("20260101T000000_000000Z-aaa", "20260102T000000_000000Z-aaa", "20260103T000000_000000Z-bbb"):
        RunStore(study / name).write(records(name), {})
    assert completed_run(study, "aaa") == study / "20260102T000000_000000Z-aaa"
    assert completed_run(study, "ccc") is None and completed_run(tmp_path / "missing", "aaa") is None

