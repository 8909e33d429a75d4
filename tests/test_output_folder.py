"""A full or read-only output folder ends a run with one line naming the folder and the cause,
exit 1, no traceback, nothing that looks finished (issue 22, from item 5).

"Full" is the process's file-size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past
it fails with EFBIG as a write to a full disk fails with ENOSPC): a limit below the writability
probe fails before any model loads, one above it fails when the records are written. "Read-only"
is a folder this user cannot write: chmod for an ordinary user, /sys (sysfs, no new files even
for root) otherwise."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT

RUN = ["encoder=clip_vit_l14_336", "encoder.size=tiny", "encoder.weights=random", "dataset=synthetic",
       "dataset.num_images=2", "progress=false"]


def harness(results: Path | str, cwd: Path, fsize: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "harness", *RUN, f"results_dir={results}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit, stdin=subprocess.DEVNULL)


def one_line_exit_1(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def nothing_finished(results: Path) -> None:
    study = results / "runs" / "default"
    left = sorted(p.name for p in study.iterdir()) if study.is_dir() else []
    assert not [n for n in left if not n.startswith(".") or n.startswith(".tmp-")], left


def test_a_full_disk_before_the_run_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    res = harness(results, tmp_path, fsize=1024)  # the 4 KiB probe does not fit
    one_line_exit_1(res, f"results folder {results} is not writable", "too large")
    assert not results.exists()


@pytest.mark.slow
def test_a_disk_that_fills_during_the_run_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    res = harness(results, tmp_path, fsize=6000)  # the probe and Hydra's files fit, records.parquet not
    line = one_line_exit_1(res, f"cannot write {results / 'runs' / 'default'}", "too large")
    assert "jobs failed" not in line
    nothing_finished(results)


def test_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        results = Path("/sys") / f"harness-test-{os.getpid()}"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        results = ro / "results"
    res = harness(results, tmp_path)
    one_line_exit_1(res, f"results folder {results} is not writable")
    assert not results.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_log_file_on_a_full_disk_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Hydra logs each job to a file in the results folder; on a full disk every record's write
    fails (ENOSPC, as /dev/full answers). Inside a command that prints nothing; outside one,
    Python's logging prints its usual traceback (so the test can tell)."""
    import contextlib
    import logging

    from harness.command import guarded

    log = logging.getLogger("harness.test_full_disk")
    handler = logging.FileHandler("/dev/full")
    log.addHandler(handler)
    try:
        assert guarded(lambda: log.error("a record the disk cannot take") or 0, "test") == 0
        assert "Traceback" not in capsys.readouterr().err
        log.error("outside a command")
        assert "--- Logging error ---" in capsys.readouterr().err
    finally:
        log.removeHandler(handler)
        with contextlib.suppress(OSError):  # its last flush fails too; logging.shutdown ignores that as well
            handler.close()
