"""Sweeps on a real SLURM cluster (`make slurm-up`, or .ci/run as root): the quickstart study
through SLURM writes the basic launcher's records, status and report read them, a rerun submits
nothing, a cancelled job and a job stopped by its time limit end the sweep with a failure naming
the job and leave nothing half-written; refused requests are one line naming the launcher key.
Skipped, with the reason, when no cluster answers (`sinfo`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import status
from harness.pipeline.store import COMPLETE, RunStore, find_runs, hash_of
from harness.slurm import SlurmError, Task, Watch, cluster_answers, launcher_settings, submit, watch
from harness.status import JobState
from tests.helpers.cli import cli

NO_CLUSTER = cluster_answers()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(NO_CLUSTER is not None, reason=f"no SLURM cluster: {NO_CLUSTER} (make slurm-up starts one)"),
    pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
]
SMALL = ["dataset.num_images=2", "progress=false"]
# Record columns that say what was computed (not when, where or how fast).
CONTENT = ["config_hash", "config_label", "encoder", "strategy", "strategy_params", "dataset_params", "seed", "kind",
           "image_id", "status", "width", "height", "grid_rows", "grid_cols", "n_views", "executed_views",
           "visual_tokens", "metric", "value"]


def sweep(results: Path, *args: str, launcher: str = "slurm", background: bool = False, env: dict | None = None):
    return cli("harness.sweep", "quickstart", "--launcher", launcher, f"results_dir={results}", *args,
               timeout=900, background=background, env=env)


def by_hash(results: Path) -> dict[str, Path]:
    return {hash_of(p): p for p in find_runs(results / "runs" / "quickstart")}


def visible(results: Path) -> list[str]:
    """What a reader of the study folder sees (temporary folders and locks start with '.')."""
    folder = results / "runs" / "quickstart"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def started_task(results: Path, timeout_s: float = 300) -> str:
    """The SLURM id (`<array>_<index>`) of the first task whose log exists (it started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = sorted((results / "slurm" / "quickstart").glob("*/*_*.log"))
        if logs:
            return logs[0].stem
        time.sleep(0.5)
    raise AssertionError("no SLURM task started")


@pytest.fixture(scope="module")
def on_slurm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, float]:
    results = tmp_path_factory.mktemp("slurm")
    start = time.monotonic()
    proc = sweep(results, *SMALL)
    return results, proc, time.monotonic() - start


def test_quickstart_through_slurm_writes_the_basic_launchers_records(
    on_slurm: tuple[Path, subprocess.CompletedProcess, float], tmp_path: Path
) -> None:
    results, proc, slurm_s = on_slurm
    assert proc.returncode == 0, proc.stderr
    assert "3 submitted, 3 pending, 0 running, 0 done, 0 failed, 3 left" in proc.stderr
    assert "3 submitted, 0 pending, 0 running, 3 done, 0 failed, 0 left" in proc.stderr
    start = time.monotonic()
    basic = sweep(tmp_path, *SMALL, launcher="basic")
    basic_s = time.monotonic() - start
    assert basic.returncode == 0, basic.stderr
    print(f"quickstart sweep wall time: SLURM {slurm_s:.0f} s, basic launcher {basic_s:.0f} s")
    ours, theirs = by_hash(results), by_hash(tmp_path)
    assert len(ours) == 3 and set(ours) == set(theirs)  # the same three jobs, by config hash
    for chash, run_dir in ours.items():
        a, b = (RunStore(d).records() for d in (run_dir, theirs[chash]))
        columns = [c for c in CONTENT if c in a.columns]
        key = ["kind", "image_id", "metric"]
        a, b = (f[columns].sort_values(key, na_position="first").reset_index(drop=True) for f in (a, b))
        floats = [c for c in columns if a[c].dtype.kind == "f"]
        pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
        np.testing.assert_allclose(a[floats].to_numpy(float), b[floats].to_numpy(float), rtol=1e-4, atol=1e-5)
        ids_a, emb_a = RunStore(run_dir).embeddings()
        ids_b, emb_b = RunStore(theirs[chash]).embeddings()
        assert ids_a == ids_b
        np.testing.assert_allclose(emb_a, emb_b, rtol=1e-4, atol=1e-5)


def test_status_and_report_see_the_slurm_records(
    on_slurm: tuple[Path, subprocess.CompletedProcess, float], capsys: pytest.CaptureFixture[str]
) -> None:
    results, proc, _ = on_slurm
    assert proc.returncode == 0, proc.stderr
    assert status.main(["quickstart", "-o", f"results_dir={results}", *(a for o in SMALL for a in ("-o", o))]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "quickstart: 3 jobs: 3 done, 0 failed, 0 missing"
    report = cli("harness.report", str(results / "runs" / "quickstart"), "--tables-only", "--out", str(results / "out"))
    assert report.returncode == 0, report.stderr
    table = pd.read_parquet(next((results / "out").rglob("*.parquet")))
    assert set(by_hash(results)) <= set(table["config_hash"])


def test_a_rerun_submits_nothing(on_slurm: tuple[Path, subprocess.CompletedProcess, float]) -> None:
    results, proc, _ = on_slurm
    assert proc.returncode == 0, proc.stderr
    before = sorted((results / "slurm" / "quickstart").iterdir())
    again = sweep(results, *SMALL)
    assert again.returncode == 0, again.stderr
    assert "all 3 jobs complete; nothing to submit" in again.stderr
    assert sorted((results / "slurm" / "quickstart").iterdir()) == before  # no new array, no batch script


def test_a_cancelled_job_ends_the_sweep_naming_it(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "encoder=clip_vit_l14_336", "dataset.num_images=5000", "progress=false", background=True)
    task = started_task(tmp_path)
    time.sleep(2)
    subprocess.run(["scancel", task], check=True)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out
    failed = [line for line in out.splitlines() if line.startswith("failed: experiment=quickstart/default ")]
    assert len(failed) == 1 and "encoder=clip_vit_l14_336" in failed[0], out
    assert f"SLURM job {task} ended CANCELLED without records" in failed[0]
    assert "Traceback" not in out
    assert visible(tmp_path) == []


def test_the_time_limit_leaves_nothing_half_written_and_the_job_runs_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-minute limit on a job that needs more: SLURM's SIGTERM reaches the harness (its log
    says so), the sweep names the job (TIMEOUT), no record is visible, and the next sweep plans it."""
    job = ["encoder=clip_vit_l14_336", "dataset.num_images=100000", "progress=false"]
    proc = sweep(tmp_path, *job, "hydra.launcher.timeout_min=1", background=True)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 1, out
    assert "ended TIMEOUT without records" in out
    log = next((tmp_path / "slurm" / "quickstart").glob("*/*_0.log")).read_text()
    assert "terminated (SIGTERM)" in log
    assert visible(tmp_path) == []
    assert not list((tmp_path / "runs").rglob(COMPLETE))
    assert status.main(["quickstart", *(a for o in [f"results_dir={tmp_path}", *job] for a in ("-o", o))]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "quickstart: 1 jobs: 0 done, 0 failed, 1 missing"


def _one_task(tmp_path: Path) -> list[Task]:
    return [Task(JobState("quickstart", ("encoder=clip_vit_l14_336", *SMALL, f"results_dir={tmp_path}"), "missing",
                          "0123456789ab"), 0)]


@pytest.mark.parametrize(("override", "named"), [
    ("hydra.launcher.partition=nope", "change hydra.launcher.partition or HARNESS_SLURM_PARTITION=nope"),
    ("hydra.launcher.gpus_per_node=1", "change hydra.launcher.gpus_per_node or HARNESS_SLURM_GPUS=1"),
    ("hydra.launcher.mem_gb=100000", "change hydra.launcher.mem_gb or HARNESS_SLURM_MEM_GB=100000"),
])
def test_a_refused_request_names_the_launcher_key(override: str, named: str, tmp_path: Path) -> None:
    with pytest.raises(SlurmError, match="sbatch refused the array: .*" + named.replace(".", r"\.")):
        submit(_one_task(tmp_path), launcher_settings([override]), tmp_path / "logs", "t")


def test_a_request_that_never_starts_is_cancelled_naming_the_key(tmp_path: Path) -> None:
    """More CPUs than the node has: sbatch accepts it, the job would pend for ever."""
    settings = launcher_settings(["hydra.launcher.cpus_per_task=512"])
    tasks = _one_task(tmp_path)
    ids = submit(tasks, settings, tmp_path / "logs", "t")
    with pytest.raises(SlurmError, match=r"cannot start on this cluster \(pending: \w+\).*hydra\.launcher\."
                                         r"cpus_per_task or HARNESS_SLURM_CPUS=512"):
        watch(tasks, ids, tmp_path / "runs", set(), settings, False, lambda _: None, Watch(poll_s=0.5))
    states = subprocess.run(["squeue", "-h", "-j", ids[0], "-o", "%T"], capture_output=True, text=True).stdout
    assert "PENDING" not in states  # cancelled, not left in the queue


def test_the_sweep_says_a_refusal_in_one_line(tmp_path: Path) -> None:
    proc = sweep(tmp_path, *SMALL, "hydra.launcher.partition=nope")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: sbatch refused the array: invalid partition specified: nope (Invalid partition name specified); "
        "change hydra.launcher.partition or HARNESS_SLURM_PARTITION=nope")
    assert "Traceback" not in proc.stderr
