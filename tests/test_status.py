"""`harness-status`, `harness.sweep --dry-run` and the sweep's progress line, on a study whose
results folder holds one complete job, one failed job and nothing for the third."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import status, sweep
from harness.config import compose
from harness.pipeline.execute import write_failure
from harness.pipeline.job import prepare_job
from harness.pipeline.store import RunStore
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


def test_progress_line_counts_done_and_failed_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    study = tmp_path / "s"
    RunStore(study / "20260101T000000_000000Z-aaaaaaaaaaaa").write([Record("run", {})], {})
    progress = sweep.Progress("s", study, total=5, skipped=1)
    assert progress.line() == ("[sweep] s: 5 jobs, 1 skipped (complete); 0 done, 0 failed, 4 left; "
                               "elapsed 0m00s, ETA ?")
    clock[0] += 60
    RunStore(study / "20260101T000001_000000Z-bbbbbbbbbbbb").write([Record("run", {})], {})
    RunStore(study / "20260101T000002_000000Z-cccccccccccc").write_failure(Record("run", {}), {}, "boom")
    # 2 jobs ended in 60 s, 2 left: 60 s more
    assert progress.line() == ("[sweep] s: 5 jobs, 1 skipped (complete); 1 done, 1 failed, 2 left; "
                               "elapsed 1m00s, ETA 1m00s")
    # rerun=true: the complete job is run again, nothing counts as done at the start
    rerun = sweep.Progress("s", study, total=3, skipped=0)
    assert rerun.line().startswith("[sweep] s: 3 jobs, 0 skipped (complete); 0 done, 0 failed, 3 left;")


def test_progress_line_on_slurm_counts_the_queue() -> None:
    counts = {"submitted": 4, "pending": 1, "running": 2, "done": 1, "failed": 0}
    assert status.progress_line("q", 5, 1, counts, 30.0) == (
        "[sweep] q: 5 jobs, 1 skipped (complete); 4 submitted, 1 pending, 2 running, 1 done, 0 failed, 3 left; "
        "elapsed 0m30s, ETA 1m30s")


def test_failed_jobs_that_cannot_be_prepared_count_as_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep whose jobs failed (here: weights gone) leaves FAILED folders; status planned where
    the jobs cannot be prepared any more still counts them failed, not invalid (issue 25.5)."""
    extra = [f"results_dir={tmp_path}", "dataset.num_images=2", "encoder.weights=/gone/weights"]
    config = compose(["experiment=quickstart/default", "encoder=clip_vit_l14_336", *extra])
    write_failure(config, RuntimeError("weights '/gone/weights': no such folder"), None)  # as a sweep does
    states = status.study_states("quickstart", extra, check_weights=True)
    by_encoder = {j.overrides[0]: j for j in states}
    assert by_encoder["encoder=clip_vit_l14_336"].state == "failed"
    assert "no such folder" in by_encoder["encoder=clip_vit_l14_336"].message
    assert "cannot run here now: weights '/gone/weights'" in by_encoder["encoder=clip_vit_l14_336"].message
    assert not any(j.runnable for j in states)  # a sweep refuses all three before launching any
    assert {by_encoder[e].state for e in ("encoder=phi3_vision", "encoder=internvit_300m")} == {"invalid"}
    assert "not a folder and not a hub id" in by_encoder["encoder=phi3_vision"].message
    assert status.summary_line("quickstart", states) == "quickstart: 3 jobs: 0 done, 1 failed, 0 missing, 2 invalid"


def test_sweep_refuses_invalid_jobs_before_launching_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretrained weights that are not cached, and a hub that does not answer: every job is
    refused in one line, the hub is probed once for the whole study (not once per job), and
    nothing is launched or written (issue 25.1)."""
    from huggingface_hub import constants

    from harness.encoders import weights

    probes = []

    def no_hub(*_: object, **__: object) -> str:
        probes.append(1)
        return "https://hub.test: no answer within 3 s"

    monkeypatch.setattr(weights, "hub_unreachable", no_hub)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache" / "hub"))
    code = sweep.main(["tiling_budget", f"results_dir={tmp_path}", "dataset=synthetic", "dataset.num_images=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("  invalid ") == 29  # one line per job
    reasons = [line for line in err.splitlines() if line.startswith("  (")]
    # a reason shared by several jobs is said once after them (InternViT 12 jobs, Phi-3 16), a job's own inline (LLaVA)
    assert sorted(int(r.split()[0][1:]) for r in reasons) == [12, 16]
    assert err.count("hub cannot be reached (https://hub.test: no answer within 3 s)") == 3
    assert "nothing was launched" in err and "Traceback" not in err
    assert probes == [1]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "hydra").exists()
