"""One computation per configuration: two processes started together compute once; a lock left
by a dead process is broken, a live one (or one of another host) is respected."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.pipeline.store import ConfigBusy, claim_config, config_lock, find_runs

ROOT = Path(__file__).resolve().parent.parent
CHASH = "abcdef012345"
# What a job does: claim, skip if done, else compute (slowly) and publish a run folder.
JOB = """
import sys, time
from pathlib import Path
from harness.pipeline.store import RunStore, claim_config
from harness.types import Record
study, chash, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
with claim_config(study, chash, on_wait=lambda owner: print("waiting for", owner.get("pid"), flush=True)) as done:
    if done is not None:
        print("skipped", done.name)
        sys.exit(0)
    time.sleep(1.0)
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"_{time.time_ns() % 10**9:09d}Z-{chash}"
    RunStore(study / run_id).write([Record("run", {"run_id": run_id})], {})
    print("computed", run_id)
"""


@pytest.mark.slow
def test_two_processes_started_together_compute_once(tmp_path: Path) -> None:
    study, go = tmp_path / "runs" / "s", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", JOB, str(study), CHASH, str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]  # both past their imports
    go.write_text("")  # release them together
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    lines = sorted(out.strip().splitlines()[-1].split()[0] for out, _ in outs)
    assert lines == ["computed", "skipped"], outs
    assert len(find_runs(study)) == 1
    assert not list(study.glob(".*.lock*"))  # released


def _lock(study: Path, **owner: object) -> Path:
    study.mkdir(parents=True, exist_ok=True)
    path = study / f".{CHASH}.lock"
    path.write_text(json.dumps(owner))
    return path


def test_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = _lock(tmp_path, pid=dead.pid, host=socket.gethostname(), start=1.0)
    with config_lock(tmp_path, CHASH, wait=False) as held:
        assert held == path and json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_lock_of_a_reused_pid_is_broken(tmp_path: Path) -> None:
    """Our own pid, but another process start time: the process that wrote it is gone."""
    _lock(tmp_path, pid=os.getpid(), host=socket.gethostname(), start=12345.0)
    with config_lock(tmp_path, CHASH, wait=False):
        pass


@pytest.mark.parametrize("where", ["live_here", "other_host"])
def test_live_or_uncheckable_lock_is_respected(tmp_path: Path, where: str) -> None:
    if where == "live_here":
        import psutil

        _lock(tmp_path, pid=os.getppid(), host=socket.gethostname(), start=psutil.Process(os.getppid()).create_time())
    else:
        _lock(tmp_path, pid=1, host=socket.gethostname() + "-elsewhere", start=1.0)
    with pytest.raises(ConfigBusy, match=CHASH):
        with config_lock(tmp_path, CHASH, wait=False):
            pass
    start = time.monotonic()
    with pytest.raises(ConfigBusy):
        with config_lock(tmp_path, CHASH, timeout_s=0.3, poll_s=0.05):
            pass
    assert 0.25 < time.monotonic() - start < 5
    assert [p.name for p in tmp_path.iterdir()] == [f".{CHASH}.lock"]  # kept, and nothing of ours left


def test_claim_yields_the_complete_run_or_none(tmp_path: Path) -> None:
    from harness.pipeline.store import RunStore
    from harness.types import Record

    with claim_config(tmp_path, CHASH) as done:
        assert done is None
        RunStore(tmp_path / f"20260101T000000_000000Z-{CHASH}").write([Record("run", {})], {})
    with claim_config(tmp_path, CHASH) as done:
        assert done is not None and done.name.endswith(CHASH)
    with claim_config(tmp_path, CHASH, rerun=True) as done:
        assert done is None


def test_execute_waits_for_the_lock_then_skips(tmp_path: Path) -> None:
    """The job runner takes the lock: while another process computes this job it waits, and
    when that one has published its result it skips instead of computing a second one."""
    import threading

    from harness.config import compose
    from harness.pipeline.execute import execute
    from harness.pipeline.job import prepare_job
    from harness.pipeline.store import RunStore
    from harness.types import Record

    job = prepare_job(compose(["encoder.size=tiny", "encoder.weights=random", "progress=false",
                               "dataset.num_images=2", f"results_dir={tmp_path}"]))
    outcome = []
    with config_lock(job.study_dir, job.config_hash):  # "another process" is computing it
        worker = threading.Thread(target=lambda: outcome.append(execute(job)))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not outcome  # waiting, not computing
        RunStore(job.study_dir / f"20260101T000000_000000Z-{job.config_hash}").write([Record("run", {})], {})
    worker.join(60)
    assert outcome and outcome[0].status == "skipped"
    assert len(find_runs(tmp_path)) == 1
