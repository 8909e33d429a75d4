"""Sweeps end to end, as users run them (subprocesses of `python -m harness -m ...`): the
submitit launcher, resume after a kill, failure records, `rerun=true`, and `harness.sweep`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from harness.config import ConfigError, study_experiments
from harness.pipeline.store import COMPLETE, FAILED, TMP_PREFIX, hash_of
from harness.sweep import commands
from tests.helpers.cli import cli
from tests.helpers.sweeps import sweep_jobs

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
]
TINY = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "study=sweeptest"]


def harness(args: list[str], results: Path, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    return cli("harness", "-m", *TINY, f"results_dir={results}", *args, timeout=240, **kw)


def marked(results: Path, marker: str) -> list[Path]:
    """Run folders holding `marker`. Polled while a sweep writes: a temp folder renamed under
    rglob's feet raises FileNotFoundError, so the scan is retried."""
    for _ in range(100):
        try:
            return sorted(p.parent for p in (results / "runs").rglob(marker)
                          if not p.parent.name.startswith(TMP_PREFIX))
        except FileNotFoundError:
            time.sleep(0.01)
    raise RuntimeError(f"could not scan {results / 'runs'}")


def test_two_job_sweep_through_submitit_local(tmp_path: Path) -> None:
    """submitit_local runs each job in its own process; both jobs' records land in the study."""
    proc = harness(["hydra/launcher=submitit_local", "dataset.num_images=2", "seed=0,1"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = marked(tmp_path, COMPLETE)
    assert len(done) == 2
    seeds = sorted(int(pd.read_parquet(d / "records.parquet").query("kind == 'run'")["seed"].iloc[0]) for d in done)
    assert seeds == [0, 1]
    assert all(len(pd.read_parquet(d / "records.parquet").query("kind == 'image'")) == 2 for d in done)
    assert list((tmp_path / "hydra" / "sweeptest").rglob(".submitit")), "submitit wrote no job folders"


def test_killed_study_reruns_each_job_exactly_once(tmp_path: Path) -> None:
    """Kill a 2-job sweep after its first job completes; the rerun skips it and runs the other."""
    proc = harness(["dataset.num_images=2,16"], tmp_path, background=True)
    deadline = time.monotonic() + 120
    while not marked(tmp_path, COMPLETE) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = marked(tmp_path, COMPLETE)
    assert len(first) == 1, "the kill should land while the second (16-image) job runs"
    # nothing of the killed job looks like records: only the completed folder is visible
    visible = [p for p in (tmp_path / "runs" / "sweeptest").iterdir() if not p.name.startswith(".")]  # .tmp-*, locks
    assert visible == first
    rerun = harness(["dataset.num_images=2,16"], tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"skip {hash_of(first[0])}" in rerun.stdout + rerun.stderr
    per_hash = Counter(hash_of(p) for p in marked(tmp_path, COMPLETE))
    assert len(per_hash) == 2 and set(per_hash.values()) == {1}
    # a third run, with keys that are not part of the resume key changed, does nothing new
    again = harness(["dataset.num_images=2,16", "progress=true", "max_error_fraction=0.5"], tmp_path)
    assert again.returncode == 0
    assert (again.stdout + again.stderr).count("skip ") == 2
    assert Counter(hash_of(p) for p in marked(tmp_path, COMPLETE)) == per_hash


def test_failed_job_writes_failure_record_and_sweep_goes_on(tmp_path: Path) -> None:
    """A job that cannot load its weights leaves a FAILED folder with an error row; the next job
    runs; the exit status says something failed. (Resume retrying it: test_store.)"""
    args = ["dataset.num_images=2", "encoder.weights=/nonexistent/weights,random"]
    proc = harness(args, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "jobs failed" in proc.stderr
    failed, done = marked(tmp_path, FAILED), marked(tmp_path, COMPLETE)
    assert len(failed) == 1 and len(done) == 1
    row = pd.read_parquet(failed[0] / "records.parquet")
    assert list(row["kind"]) == ["run"] and row["status"].iloc[0] == "error:load"
    assert "Error" in row["message"].iloc[0] and "Traceback" in (failed[0] / "error.txt").read_text()
    assert not (failed[0] / COMPLETE).exists()


def test_study_commands() -> None:
    """A study is every experiment config that declares it; the atlas is planned, not run."""
    assert study_experiments("tiling_budget") == [
        "tiling_budget/internvl", "tiling_budget/llava", "tiling_budget/phi3"]
    cmds = commands("tiling_budget", "slurm", ["encoder.size=tiny"])
    assert [c[4] for c in cmds] == ["experiment=tiling_budget/internvl", "experiment=tiling_budget/llava",
                                    "experiment=tiling_budget/phi3"]
    assert all("hydra/launcher=slurm" in c and c[-1] == "encoder.size=tiny" for c in cmds)
    assert commands("token_atlas", "basic", [])[0][1:4] == ["-m", "harness.atlas", "--experiment"]
    for study in ("quickstart", "encoder_zoo"):
        assert study_experiments(study) == [f"{study}/default"]
    assert study_experiments("cross_strategy") == ["cross_strategy/default", "cross_strategy/phi3"]
    with pytest.raises(ConfigError, match=r"valid: .*encoder_zoo"):
        commands("nope", "basic", [])
    with pytest.raises(ConfigError, match="valid: basic, joblib, slurm, submitit_local"):
        commands("quickstart", "nope", [])


def test_slurm_launcher_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """slurm.yaml composes onto submitit's SLURM schema; HARNESS_SLURM_* set its fields, typed;
    unset, nothing is asked that a plain CPU partition refuses (no partition, GPU, memory or CPUs)."""
    from hydra import compose, initialize_config_dir

    from harness.config import CONFIG_DIR
    from harness.slurm import launcher_settings, sbatch_options

    for name in ("PARTITION", "GPUS", "CPUS", "MEM_GB", "TIMEOUT_MIN", "ACCOUNT", "QOS", "ARRAY_PARALLELISM"):
        monkeypatch.delenv(f"HARNESS_SLURM_{name}", raising=False)
    assert sbatch_options(launcher_settings([])) == ["--time=120"]
    monkeypatch.setenv("HARNESS_SLURM_PARTITION", "a100")
    monkeypatch.setenv("HARNESS_SLURM_TIMEOUT_MIN", "30")
    monkeypatch.setenv("HARNESS_SLURM_GPUS", "1")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("a100", 30, 1)
    assert (launcher.mem_gb, launcher.cpus_per_task, launcher.account) == (None, None, None)
    # a command-line override wins over the variable
    settings = launcher_settings(["hydra.launcher.partition=h100", "hydra.launcher.mem_gb=32", "encoder.size=tiny"])
    assert sbatch_options(settings) == ["--partition=h100", "--time=30", "--gpus-per-node=1", "--mem=32G"]


def test_failure_kinds() -> None:
    """What `status=error:<kind>` a failed job gets."""
    import torch

    from harness.config import ConfigError
    from harness.pipeline.execute import LoadError, failure_kind

    assert failure_kind(LoadError("OSError: no such file: model.safetensors")) == "load"
    assert failure_kind(ConfigError("strategy makes 336px tiles")) == "config"
    assert failure_kind(MemoryError()) == "oom"
    assert failure_kind(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")) == "oom"
    assert failure_kind(RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")) == "oom"
    assert failure_kind(ValueError("shapes do not match")) == "exception"




@pytest.mark.parametrize("study", ["quickstart", "encoder_zoo", "tiling_budget", "cross_strategy"])
def test_every_job_of_every_study_passes_the_pre_load_checks(study: str) -> None:
    """Each job of each study (on synthetic images: MME is not here) passes everything that runs
    before a model loads: choices, parameters, tile sizes, and the encoder/connector/layout pairing."""
    from harness.config import compose
    from harness.pipeline.job import prepare_job

    n = 0
    for experiment in study_experiments(study):
        for overrides in sweep_jobs(experiment):
            job = prepare_job(compose([f"experiment={experiment}", *overrides, "dataset=synthetic"]))
            assert job.config["study"] == study
            n += 1
    assert n == {"quickstart": 3, "encoder_zoo": 3, "tiling_budget": 29, "cross_strategy": 12}[study]
