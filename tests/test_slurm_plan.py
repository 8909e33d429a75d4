"""The SLURM path without a cluster: the batch script, the request's sbatch options, refusals
named by key, and how the watcher decides done / failed and bounds its wait, with squeue's
answers scripted and a fake clock (the real cluster: tests/test_slurm.py)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import slurm
from harness.pipeline.store import RunStore
from harness.slurm import SlurmError, Task, Watch, batch_script, blame, sbatch_options, watch
from harness.status import JobState
from harness.types import Record

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning")


def tasks(n: int) -> list[Task]:
    out = [Task(JobState("quickstart", (f"encoder=e{i}", "dataset.path=/my data/x"), "missing", f"{i:012x}"), i)
           for i in range(n)]
    for t in out:
        t.array_id, t.array_index = "7", t.index
    return out


def test_batch_script_runs_each_job_as_the_basic_launcher_would(tmp_path: Path) -> None:
    script = batch_script(tasks(3), {"array_parallelism": 2, "partition": "cpu", "setup": ["module load x"]},
                          tmp_path, "quickstart")
    lines = script.splitlines()
    assert "#SBATCH --array=0-2%2" in lines and "#SBATCH --partition=cpu" in lines
    assert f"#SBATCH --output={tmp_path}/%A_%a.log" in lines
    assert lines.index("module load x") > max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH"))
    case = next(ln for ln in lines if ln.strip().startswith("1)"))
    argv = shlex.split(case.split(")", 1)[1].rstrip(" ;"))
    assert argv[0] == "exec" and argv[2:4] == ["-m", "harness"]
    assert argv[4:] == ["experiment=quickstart", "encoder=e1", "dataset.path=/my data/x"]  # quoted, one word each
    # bash itself reads it (syntax only)
    (tmp_path / "s.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "s.sh")]).returncode == 0


def test_sbatch_options_leave_unset_keys_to_the_cluster() -> None:
    assert sbatch_options({"timeout_min": 120, "nodes": 1, "tasks_per_node": 1, "partition": None}) == ["--time=120"]
    assert sbatch_options({"mem_gb": 64, "gpus_per_node": 1, "cpus_per_task": 8, "nodes": 2,
                           "additional_parameters": {"mail_type": "END"}}) == [
        "--gpus-per-node=1", "--cpus-per-task=8", "--mem=64G", "--nodes=2", "--mail-type=END"]


def test_refusals_name_the_key_and_its_variable() -> None:
    assert blame("invalid partition specified: gpu", {"partition": "gpu"}).endswith(
        "; change hydra.launcher.partition or HARNESS_SLURM_PARTITION=gpu")
    assert blame("Invalid generic resource (gres) specification", {"gpus_per_node": 1}).endswith(
        "change hydra.launcher.gpus_per_node or HARNESS_SLURM_GPUS=1")
    said = blame("Memory specification can not be satisfied", {"mem_gb": None})
    assert said.endswith("change hydra.launcher.mem_gb or HARNESS_SLURM_MEM_GB (not set: the cluster default)")
    assert blame("something else", {}) == "something else"


class Cluster:
    """Scripted squeue answers (one per poll; None: squeue does not answer) and a fake clock."""

    def __init__(self, answers: list[dict[str, tuple[str, str]] | None], tick_s: float = 1.0) -> None:
        self.answers, self.tick_s, self.now, self.cancelled = answers, tick_s, 0.0, []

    def queue(self, _ids: list[str]) -> dict[str, tuple[str, str]] | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(slurm, "queue_states", self.queue)
        monkeypatch.setattr(slurm, "cancel", lambda ids: self.cancelled.extend(ids))
        monkeypatch.setattr(slurm, "accounted_state", lambda _id: "")
        clock = SimpleNamespace(monotonic=lambda: self.now, sleep=self.sleep)
        monkeypatch.setattr(slurm, "time", clock)

    def sleep(self, _s: float) -> None:
        self.now += self.tick_s


def run_watch(study: Path, todo: list[Task], how: Watch | None = None) -> list[dict[str, int]]:
    shown: list[dict[str, int]] = []
    watch(todo, ["7"], study, set(), {"cpus_per_task": 64}, False, shown.append, how or Watch(poll_s=1))
    return shown


def test_done_failed_and_cancelled_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, todo = tmp_path / "quickstart", tasks(3)
    RunStore(study / f"20260101T000000_000000Z-{todo[0].job.config_hash}").write([Record("run", {})], {})
    RunStore(study / f"20260101T000000_000001Z-{todo[1].job.config_hash}").write_failure(
        Record("run", {}, status="error:load", message="LoadError: no weights"), {}, "trace")
    Cluster([{"7_0": ("RUNNING", "None"), "7_1": ("FAILED", "NonZeroExitCode"), "7_2": ("PENDING", "Priority")},
             {"7_0": ("COMPLETED", "None"), "7_1": ("FAILED", "None"), "7_2": ("CANCELLED", "None")}]).install(
        monkeypatch)
    shown = run_watch(study, todo)
    assert [t.outcome for t in todo] == ["done", "failed", "failed"]
    assert "error:load: LoadError: no weights" in todo[1].why
    assert todo[2].why == "SLURM job 7_2 ended CANCELLED without records"
    assert shown[0] == {"submitted": 3, "pending": 1, "running": 0, "done": 1, "failed": 1}
    assert shown[-1] == {"submitted": 3, "pending": 0, "running": 0, "done": 1, "failed": 2}


def test_a_task_gone_from_the_queue_fails_after_a_bounded_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster([{"7_0": ("RUNNING", "None")}, {}])
    cluster.install(monkeypatch)
    todo = tasks(1)
    run_watch(tmp_path, todo, Watch(poll_s=1, absent_s=10))
    assert todo[0].outcome == "failed" and "left the queue (state unknown: no accounting)" in todo[0].why
    assert 10 < cluster.now <= 13


def test_a_silent_squeue_ends_the_wait_naming_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster([{"7_0": ("RUNNING", "None")}, None])
    cluster.install(monkeypatch)
    with pytest.raises(SlurmError, match=r"squeue has not answered for 60 s; jobs 7_0 may still run"):
        run_watch(tmp_path, tasks(1), Watch(poll_s=1, unreachable_s=60))
    assert cluster.now <= 63


def test_a_job_that_can_never_start_is_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster([{"7_0": ("PENDING", "PartitionConfig")}])
    cluster.install(monkeypatch)
    with pytest.raises(SlurmError, match=r"job 7_0 cannot start .*PartitionConfig.*cpus_per_task or "
                                         r"HARNESS_SLURM_CPUS=64"):
        run_watch(tmp_path, tasks(1))
    assert cluster.cancelled == ["7"]


def test_no_cluster_is_said_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm.shutil, "which", lambda _name: None)
    assert slurm.cluster_answers() == "no `sinfo` on PATH (SLURM's client commands are not installed)"
