"""`harness-status`, `harness.sweep --dry-run` and the sweep's progress line, on a study whose
results folder holds one complete job, one failed job and nothing for the third."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import status, sweep
from harness.config import compose
from harness.execute import write_failure
from harness.job import prepare_job
from harness.store import RunStore
from harness.types import Record

pytestmark = [pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
              pytest.mark.slow]  # composes and prepares every job of a study


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("results")
    extra = [f"results_dir={out}", "dataset.num_images=2"]
    done = prepare_job(compose(["experiment=quickstart/default", "encoder=clip_vit_l14_336", *extra]))
    RunStore(done.study_dir / f"20260101T000000_000000Z-{done.config_hash}").write([Record("run", {})], {})
    bad = prepare_job(compose(["experiment=quickstart/default", "encoder=phi3_vision", *extra]))
    write_failure(bad.config, RuntimeError("the GPU fell off"), bad)
    return out, extra


def test_status_says_done_failed_missing(results: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    _, extra = results
    assert status.main(["quickstart", *(a for o in extra for a in ("-o", o))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "quickstart: 3 jobs: 1 done, 1 failed, 1 missing"
    assert any(line.split()[:2] == ["failed", "experiment=quickstart/default"] and "encoder=phi3_vision" in line
               and "the GPU fell off" in line for line in out)
    assert any(line.split()[:1] == ["missing"] and "encoder=internvit_300m" in line for line in out)
    assert not any("clip_vit_l14_336" in line for line in out[1:])  # done jobs only with --all
    assert status.main(["nope"]) == 2


def test_sweep_dry_run_lists_jobs_and_skips(
    results: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir, extra = results
    before = sorted(p.name for p in (out_dir / "runs" / "quickstart").iterdir())
    assert sweep.main(["quickstart", "--dry-run", *extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    actions = {line.split("experiment=quickstart/default ")[1].split()[0]: line.split("  ")[0].strip()
               for line in lines[:3]}
    assert actions == {"encoder=clip_vit_l14_336": "skip (complete)", "encoder=phi3_vision": "run (failed)",
                       "encoder=internvit_300m": "run (missing)"}
    assert sorted(p.name for p in (out_dir / "runs" / "quickstart").iterdir()) == before  # ran nothing
    assert sweep.main(["quickstart", "--dry-run", *extra, "rerun=true"]) == 0
    assert "skip" not in capsys.readouterr().out


def test_progress_line_counts_new_folders_and_estimates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    study = tmp_path / "s"
    RunStore(study / "20260101T000000_000000Z-aaaaaaaaaaaa").write([Record("run", {})], {})
    progress = sweep.Progress(study, total=5, done_before=1)
    assert progress.line() == (1, "[sweep] 1/5 jobs done (1 before this sweep), elapsed 0m00s, ETA ?")
    clock[0] += 60
    RunStore(study / "20260101T000001_000000Z-bbbbbbbbbbbb").write([Record("run", {})], {})
    RunStore(study / "20260101T000002_000000Z-cccccccccccc").write_failure(Record("run", {}), {}, "boom")
    # 2 jobs in 60 s, 2 left: 60 s more
    assert progress.line() == (3, "[sweep] 3/5 jobs done (1 before this sweep), elapsed 1m00s, ETA 1m00s")
