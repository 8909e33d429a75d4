"""Running a study's jobs on a SLURM cluster: one job array, watched until every task ended.

`harness.sweep <study> --launcher slurm` plans the study first (`harness.status`: every job
prepared without a model, its resume key looked up), so completed jobs are never submitted and
an invalid one is refused before anything is. The jobs left are written into one batch script
whose array task `i` runs `python -m harness <job i's overrides>`: the same command, the same
composed config and therefore the same config hash and records as the basic launcher.

The request comes from `configs/hydra/launcher/slurm.yaml` (hydra-submitit-launcher's keys,
each set by `hydra.launcher.<key>=` or its HARNESS_SLURM_* variable); `sbatch_options` turns it
into sbatch options, and a request sbatch refuses, or one the scheduler keeps pending for a
reason that never passes (a partition too small), is one line naming the launcher key to change.

Task states come from `squeue --states=all`, which shows ended jobs for `MinJobAge` (300 s by
default) without accounting; `sacct` is asked only for a task that already left the queue. A task
that ends without a COMPLETE folder (cancelled, time limit, killed, out of memory) is a failure
naming the job and its SLURM state; the sweep never waits for a task SLURM no longer knows.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import CONFIG_DIR, ConfigError
from harness.pipeline.store import find_failed, find_runs, hash_of
from harness.status import JobState, duration, progress_line

ENV = "HARNESS_SLURM_"  # prefix of the variables slurm.yaml reads (docs/slurm.md)
# launcher key -> (sbatch option, how its value is written)
SBATCH_OPTIONS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "partition": ("--partition", str),
    "timeout_min": ("--time", lambda m: str(int(m))),
    "gpus_per_node": ("--gpus-per-node", str),
    "cpus_per_task": ("--cpus-per-task", str),
    "mem_gb": ("--mem", lambda g: f"{int(g)}G"),
    "account": ("--account", str),
    "qos": ("--qos", str),
    "constraint": ("--constraint", str),
    "exclude": ("--exclude", str),
    "gres": ("--gres", str),
    "comment": ("--comment", str),
    "cpus_per_gpu": ("--cpus-per-gpu", str),
    "gpus_per_task": ("--gpus-per-task", str),
    "mem_per_gpu": ("--mem-per-gpu", str),
    "mem_per_cpu": ("--mem-per-cpu", str),
    "nodes": ("--nodes", str),
    "tasks_per_node": ("--ntasks-per-node", str),
}
ENV_OF = {"partition": "PARTITION", "gpus_per_node": "GPUS", "cpus_per_task": "CPUS", "mem_gb": "MEM_GB",
          "timeout_min": "TIMEOUT_MIN", "account": "ACCOUNT", "qos": "QOS", "array_parallelism": "ARRAY_PARALLELISM"}
# Words of sbatch's refusals and of pending reasons that never pass -> the launcher keys at fault.
BLAME = (
    ("partition", ("partition",)),
    ("generic resource", ("gpus_per_node", "gres", "gpus_per_task")),
    ("gres", ("gpus_per_node", "gres", "gpus_per_task")),
    ("memory", ("mem_gb", "mem_per_cpu", "mem_per_gpu")),
    ("--time", ("timeout_min",)),
    ("time limit", ("timeout_min",)),
    ("account", ("account",)),
    ("qos", ("qos",)),
    ("node configuration", ("cpus_per_task", "mem_gb", "gpus_per_node", "constraint", "nodes")),
    ("constraint", ("constraint",)),
)
# Pending reasons with which a job never starts on this cluster as it is -> the keys at fault
# (not ReqNodeNotAvail: nodes down for maintenance come back).
RESOURCES = ("cpus_per_task", "mem_gb", "gpus_per_node", "gres", "mem_per_cpu", "nodes", "tasks_per_node")
NEVER_STARTS: dict[str, tuple[str, ...]] = {
    "PartitionConfig": (*RESOURCES, "partition"), "BadConstraints": (*RESOURCES, "constraint"),
    "PartitionTimeLimit": ("timeout_min",), "PartitionNodeLimit": ("nodes",), "InvalidAccount": ("account",),
    "InvalidQOS": ("qos",),
    "QOSMaxCpuPerJobLimit": ("cpus_per_task",), "QOSMaxGRESPerJob": ("gpus_per_node", "gres"),
    "QOSMaxMemoryPerJob": ("mem_gb",), "AssocMaxCpuPerJobLimit": ("cpus_per_task",),
    "AssocMaxGRESPerJob": ("gpus_per_node", "gres"), "AssocMaxMemPerJob": ("mem_gb",),
}
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
ONE_BY_DEFAULT = ("nodes", "tasks_per_node")  # SLURM's own default: not written out
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001 (indices 0..1000)


class SlurmError(RuntimeError):
    """The cluster cannot take or finish the request; one line that names what to change."""


def cluster_answers(timeout_s: float = 10.0) -> str | None:
    """Why no SLURM cluster answers here (no `sinfo`, or it fails), or None when one does."""
    if shutil.which("sinfo") is None:
        return "no `sinfo` on PATH (SLURM's client commands are not installed)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"`sinfo` did not answer within {timeout_s:g} s"
    if out.returncode != 0:
        said = (out.stderr or out.stdout).strip().splitlines()
        return f"`sinfo` failed: {said[-1] if said else f'exit status {out.returncode}'}"
    if not out.stdout.strip():
        return "`sinfo` lists no partition"
    return None


def accounting_answers() -> bool:
    """Whether `sacct` works (accounting storage configured and reachable)."""
    if shutil.which("sacct") is None:
        return False
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now"], capture_output=True, text=True,
                             timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "not enabled" not in out.stderr + out.stdout


def launcher_settings(overrides: Sequence[str]) -> dict[str, Any]:
    """`configs/hydra/launcher/slurm.yaml` composed with the `hydra.launcher.*` overrides among
    `overrides` and the HARNESS_SLURM_* variables, resolved."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    mine = [o for o in overrides if o.lstrip("+~").startswith("hydra.launcher.")]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", ["hydra/launcher=slurm", *mine], return_hydra_config=True)
        launcher = cfg.hydra.launcher
        keys = [*SBATCH_OPTIONS, "array_parallelism", "additional_parameters", "setup"]
        return {k: OmegaConf.to_container(launcher[k], resolve=True) if OmegaConf.is_config(launcher[k])
                else launcher[k] for k in keys}
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"hydra.launcher: {str(exc).splitlines()[0]}") from exc


def where_set(key: str) -> str:
    """How a user sets launcher key `key`: the override, and its variable where it has one."""
    env = f" or {ENV}{ENV_OF[key]}" if key in ENV_OF else ""
    return f"hydra.launcher.{key}{env}"


def sbatch_options(settings: dict[str, Any]) -> list[str]:
    """The sbatch options of a request (unset keys: the cluster's defaults)."""
    out = [f"{flag}={write(settings[key])}" for key, (flag, write) in SBATCH_OPTIONS.items()
           if settings.get(key) is not None and not (key in ONE_BY_DEFAULT and settings[key] == 1)]
    for key, value in (settings.get("additional_parameters") or {}).items():
        out.append(f"--{str(key).replace('_', '-')}={value}")
    return out


def blame(message: str, settings: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """`message` (sbatch's or the scheduler's) with the launcher keys that cause it, as set:
    `keys`, or those the message's words point to."""
    if keys is None:
        low = message.lower()
        keys = next((k for word, k in BLAME if word in low), ())
    if not keys:
        return message
    named = [f"{where_set(k)}={settings.get(k)}" for k in keys if settings.get(k) is not None
             and not (k in ONE_BY_DEFAULT and settings[k] == 1)]
    return f"{message}; change {', '.join(named or [f'{where_set(keys[0])} (not set: the cluster default)'])}"


@dataclass
class Task:
    """One job of the study as one task of the array."""

    job: JobState
    index: int  # in the study's list of submitted jobs
    array_id: str = ""
    array_index: int = 0
    state: str = "SUBMITTED"
    reason: str = ""
    outcome: str = ""  # done | failed, once ended
    why: str = ""
    seen_at: float = field(default_factory=time.monotonic)  # last seen in the queue (or submitted)
    ended_at: float | None = None  # first seen ended in the queue

    @property
    def slurm_id(self) -> str:
        return f"{self.array_id}_{self.array_index}"


def batch_script(tasks: Sequence[Task], settings: dict[str, Any], log_dir: Path, study: str) -> str:
    """The array's batch script: SLURM options, the launcher's `setup` lines, then task `i` runs
    `python -m harness` with job i's overrides (exec, so SLURM's signals reach it directly)."""
    python = shlex.quote(sys.executable)
    parallel = int(settings.get("array_parallelism") or 0)
    last = len(tasks) - 1
    lines = ["#!/bin/bash", f"#SBATCH --job-name=harness-{study}",
             f"#SBATCH --array=0-{last}" + (f"%{parallel}" if parallel else ""),
             f"#SBATCH --output={log_dir}/%A_%a.log",
             *(f"#SBATCH {o}" for o in sbatch_options(settings)),
             *(settings.get("setup") or []),
             f"cd {shlex.quote(os.getcwd())}",
             'case "$SLURM_ARRAY_TASK_ID" in']
    for i, task in enumerate(tasks):
        args = " ".join(shlex.quote(a) for a in (f"experiment={task.job.experiment}", *task.job.overrides))
        lines.append(f"  {i}) exec {python} -m harness {args} ;;")
    lines += ['  *) echo "no job for array index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac", ""]
    return "\n".join(lines)


def submit(tasks: list[Task], settings: dict[str, Any], log_dir: Path, study: str) -> list[str]:
    """Submit the tasks as arrays of at most MAX_ARRAY tasks; returns the array job ids.
    A refusal cancels what this call submitted and raises SlurmError naming the key to change."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    for start in range(0, len(tasks), MAX_ARRAY):
        chunk = tasks[start:start + MAX_ARRAY]
        script = log_dir / f"array-{start // MAX_ARRAY}.sbatch"
        script.write_text(batch_script(chunk, settings, log_dir, study))
        out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            cancel(ids)
            said = [ln.removeprefix("sbatch: error: ").strip() for ln in (out.stderr or out.stdout).splitlines()
                    if ln.strip()]
            generic = [ln.removeprefix("Batch job submission failed: ") for ln in said
                       if ln.startswith("Batch job submission failed")]
            specific = [ln for ln in said if not ln.startswith("Batch job submission failed")]
            said_all = "; ".join(specific or generic) or f"exit status {out.returncode}"
            if specific and generic:
                said_all += f" ({'; '.join(generic)})"
            raise SlurmError(f"sbatch refused the array: {blame(said_all, settings)}")
        array_id = out.stdout.strip().split(";")[0]
        ids.append(array_id)
        for i, task in enumerate(chunk):
            task.array_id, task.array_index = array_id, i
    return ids


def cancel(array_ids: Sequence[str]) -> None:
    if array_ids:
        subprocess.run(["scancel", *array_ids], capture_output=True, timeout=60)


def queue_states(array_ids: Sequence[str]) -> dict[str, tuple[str, str]] | None:
    """{'<array>_<index>': (state, reason)} from squeue (ended tasks included while SLURM keeps
    them), or None when squeue does not answer."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-j", ",".join(array_ids), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states = {}
    for line in out.stdout.splitlines():
        job_id, state, reason = [*line.split("|"), "", ""][:3]
        states[job_id.strip()] = (state.strip(), reason.strip())
    return states


def accounted_state(slurm_id: str) -> str:
    """A task's final state from sacct ('' when accounting cannot say)."""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", slurm_id], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return ""
    return out.stdout.split("\n", 1)[0].split()[0] if out.returncode == 0 and out.stdout.strip() else ""


def _new_folders(study_dir: Path, before: set[Path]) -> tuple[dict[str, Path], dict[str, Path]]:
    """{hash: folder} of the COMPLETE and of the FAILED folders that appeared since `before`."""
    if not study_dir.is_dir():
        return {}, {}
    for _ in range(20):  # a folder renamed into place under rglob's feet: look again
        try:
            done = {hash_of(p): p for p in find_runs(study_dir) if p not in before}
            failed = {hash_of(p): p for p in find_failed(study_dir) if p not in before}
            return done, failed
        except FileNotFoundError:
            time.sleep(0.05)
    return {}, {}


@dataclass
class Watch:
    """How the sweep waits: poll period; how long the records of a task SLURM ended may take to
    appear (shared file systems; `absent_s` for one that exited 0) and how long a task may be
    missing from the queue before it counts as failed; how long squeue may be silent."""

    poll_s: float = 2.0
    records_s: float = 5.0
    absent_s: float = 30.0
    unreachable_s: float = 300.0


def watch(tasks: list[Task], array_ids: list[str], study_dir: Path, before: set[Path], settings: dict[str, Any],
          accounting: bool, show: Callable[[dict[str, int]], None], how: Watch | None = None) -> None:
    """Poll until every task ended (done: a new COMPLETE folder of its hash; failed: a FAILED
    folder, or ended without one). `show(counts)` is called on every change of the counts."""
    how = how or Watch()
    silent_since: float | None = None
    shown: dict[str, int] = {}
    while True:
        now = time.monotonic()
        queue = queue_states(array_ids)
        done, failed = _new_folders(study_dir, before)
        if queue is None:
            silent_since = silent_since or now
            if now - silent_since > how.unreachable_s:
                open_ = ", ".join(t.slurm_id for t in tasks if not t.outcome)
                raise SlurmError(f"squeue has not answered for {how.unreachable_s:g} s; jobs {open_} may still run "
                                 "(harness-status shows what finished; the next sweep resumes)")
            queue = {}
        else:
            silent_since = None
        for task in (t for t in tasks if not t.outcome):
            chash = task.job.config_hash or ""
            if chash in done:
                task.outcome = "done"
                continue
            state, reason = queue.get(task.slurm_id, ("", ""))
            if state:
                task.state, task.reason, task.seen_at = state, reason, now
                if state in ENDED and task.ended_at is None:
                    task.ended_at = now
            if chash in failed:
                task.outcome, task.why = "failed", _failure(failed[chash])
            elif state == "PENDING" and reason in NEVER_STARTS:
                cancel(array_ids)
                raise SlurmError(blame(f"job {task.slurm_id} cannot start on this cluster (pending: {reason})",
                                       settings, NEVER_STARTS[reason]))
            elif task.ended_at is not None and now - task.ended_at > (
                    how.absent_s if task.state == "COMPLETED" else how.records_s):  # exit 0: it wrote; wait longer
                task.outcome = "failed"
                task.why = f"SLURM job {task.slurm_id} ended {task.state} without records"
            elif not state and silent_since is None and now - task.seen_at > how.absent_s:
                final = accounted_state(task.slurm_id) if accounting else ""
                task.outcome = "failed"
                task.why = (f"SLURM job {task.slurm_id} left the queue ({final or 'state unknown: no accounting'}) "
                            "without records")
        counts = {"submitted": len(tasks),
                  "pending": sum(not t.outcome and t.state in ("SUBMITTED", "PENDING") for t in tasks),
                  "running": sum(not t.outcome and t.state not in ("SUBMITTED", "PENDING") for t in tasks),
                  "done": sum(t.outcome == "done" for t in tasks),
                  "failed": sum(t.outcome == "failed" for t in tasks)}
        if counts != shown:
            show(counts)
            shown = counts
        if all(t.outcome for t in tasks):
            return
        time.sleep(how.poll_s)


def _failure(run_dir: Path) -> str:
    from harness.status import failure_message

    return f"{failure_message(run_dir)} -> {run_dir}"


def run_study(study: str, states: Sequence[JobState], overrides: Sequence[str], study_dir: Path, rerun: bool,
              skipped: int, how: Watch | None = None) -> int:
    """Submit the planned jobs that are not complete (all with `rerun`) as one array, watch them
    with the sweep's progress line, and return 1 (after naming each) when any failed."""
    from harness.status import results_dir

    why = cluster_answers()
    if why is not None:
        raise SlurmError(f"no SLURM cluster answers here: {why}")
    settings = launcher_settings(overrides)
    tasks = [Task(job, i) for i, job in enumerate(j for j in states if rerun or j.state != "done")]
    if not tasks:
        print(f"[sweep] {study}: all {len(states)} jobs complete; nothing to submit (rerun=true runs them again)",
              file=sys.stderr)
        return 0
    accounting = accounting_answers()
    if not accounting:
        print("[sweep] note: this cluster keeps no accounting (sacct): job states come from squeue, which forgets "
              f"an ended job after MinJobAge; a job missing from the queue for {(how or Watch()).absent_s:g} s "
              "without records counts as failed", file=sys.stderr)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = (results_dir(overrides) / "slurm" / study / stamp).absolute()
    before = set(find_runs(study_dir)) | set(find_failed(study_dir)) if study_dir.is_dir() else set()
    start = time.monotonic()
    array_ids = submit(tasks, settings, log_dir, study)
    print(f"[sweep] submitted {len(tasks)} jobs as SLURM array {', '.join(array_ids)} "
          f"({' '.join(sbatch_options(settings)) or 'cluster defaults'}; at most "
          f"{settings.get('array_parallelism') or 'all'} at once); logs: {log_dir}", file=sys.stderr)

    def show(counts: dict[str, int]) -> None:
        line = progress_line(study, len(states), skipped, counts, time.monotonic() - start)
        print(line, file=sys.stderr, flush=True)

    try:
        watch(tasks, array_ids, study_dir, before, settings, accounting, show, how)
    except KeyboardInterrupt:
        cancel(array_ids)
        print(f"[sweep] cancelled SLURM array {', '.join(array_ids)}", file=sys.stderr)
        raise
    failed = [t for t in tasks if t.outcome == "failed"]
    for task in failed:
        print(f"failed: {task.job.name}: {task.why}; log: {log_dir / f'{task.slurm_id}.log'}",
              file=sys.stderr)
    print(f"[sweep] {study}: {len(tasks) - len(failed)} done, {len(failed)} failed on SLURM in "
          f"{duration(time.monotonic() - start)}", file=sys.stderr)
    return 1 if failed else 0
