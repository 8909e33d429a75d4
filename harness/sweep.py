"""`python -m harness.sweep <study>`: run every experiment config of a study (`make sweep`).

A study is every experiment config (`configs/experiment/<study>/<variant>.yaml`) that declares
`study: <name>`: one file when its sweep is a product of options (Hydra's basic sweeper),
several when it is not (tiling_budget: one per strategy family). A config with an `atlas`
block is planned by `harness.atlas` instead of run. Every job is planned before any is launched
(`--dry-run`'s check), so a job that cannot run here (a dataset or weights neither cached nor
reachable) stops the sweep in seconds.
Finished jobs are skipped (resume), so rerunning a study runs what is missing; on SLURM they are
not even submitted (`harness.slurm`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.command import guarded
from harness.config import ConfigError, choices, experiment, known_studies, study_experiments
from harness.pipeline.store import find_failed, find_runs
from harness.status import progress_line


def commands(study: str, launcher: str, extra: list[str]) -> list[list[str]]:
    """The commands that run a study, in order."""
    experiments = study_experiments(study)
    if not experiments:
        raise ConfigError(f"unknown study {study!r}; valid: {', '.join(known_studies())}")
    if launcher not in choices("hydra/launcher"):
        raise ConfigError(f"unknown launcher {launcher!r}; valid: {', '.join(choices('hydra/launcher'))}")
    out = []
    for name in experiments:
        if "atlas" in experiment(name):
            out.append([sys.executable, "-m", "harness.atlas", "--experiment", name, *extra])
        else:
            out.append([sys.executable, "-m", "harness", "-m", f"experiment={name}", f"hydra/launcher={launcher}",
                        *extra])
    return out


class Progress:
    """The progress line of a sweep run in this machine's processes: complete and failed folders
    of the study that appeared since the start, counted apart. Polls from a background thread."""

    def __init__(self, study: str, study_dir: Path, total: int, skipped: int, every_s: float = 2.0) -> None:
        self.study, self.study_dir, self.total, self.skipped, self.every_s = study, study_dir, total, skipped, every_s
        self.start = time.monotonic()
        self.before = self._finished()
        self.shown = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _finished(self) -> tuple[set[Path], set[Path]]:
        if not self.study_dir.is_dir():
            return set(), set()
        for _ in range(20):  # a folder renamed into place under rglob's feet: look again
            try:
                return set(find_runs(self.study_dir)), set(find_failed(self.study_dir))
            except FileNotFoundError:
                time.sleep(0.05)
        return set(), set()

    def counts(self) -> dict[str, int]:
        done, failed = self._finished()
        return {"done": len(done - self.before[0]), "failed": len(failed - self.before[1])}

    def line(self) -> str:
        return progress_line(self.study, self.total, self.skipped, self.counts(), time.monotonic() - self.start)

    def show(self, force: bool = False) -> None:
        line = self.line()
        if force or line.split("; elapsed")[0] != self.shown:
            print(line, file=sys.stderr, flush=True)
            self.shown = line.split("; elapsed")[0]

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.show()

    def __enter__(self) -> Progress:
        self.show(force=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.show()  # the last count, unless the poller just said it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study name (the `study:` of experiment configs)")
    parser.add_argument("--launcher", default="basic", help="basic, joblib, submitit_local, slurm "
                        "(slurm: docs/slurm.md)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the study's jobs and which a run would skip (complete already); run nothing")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder.size=tiny")
    args = parser.parse_intermixed_args(argv)
    return guarded(lambda: _one_line(sweep, args), "harness.sweep")


def _one_line(body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """A cluster that refuses or loses the sweep's jobs: one line, exit 1 (no traceback)."""
    from harness.slurm import SlurmError

    try:
        return body(args)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def wants_rerun(overrides: list[str]) -> bool:
    return any(o.split("=", 1)[0] == "rerun" and o.split("=", 1)[1].lower() == "true" for o in overrides if "=" in o)


def sweep(args: argparse.Namespace) -> int:
    """Plan every job (no model: the `--dry-run` check, weights reachable included), refuse the
    sweep if a job cannot run here, then launch what is not complete."""
    cmds = commands(args.study, args.launcher, args.overrides)
    from harness.status import JobState, job_lines, results_dir, study_states, summary_line

    states = study_states(args.study, args.overrides, check_weights=True)
    rerun = wants_rerun(args.overrides)
    if args.dry_run:
        def action(job: JobState) -> str:
            return f"{'skip (complete)' if job.state == 'done' and not rerun else f'run ({job.state})':<18}"

        print("\n".join(job_lines(states, show_done=True, action=action)))
        print(summary_line(args.study, states))
        return 0
    invalid = [j for j in states if not j.runnable]
    if invalid:
        print("\n".join(job_lines(invalid)), file=sys.stderr)
        raise ConfigError(f"{len(invalid)} of {len(states)} jobs of study {args.study!r} cannot run here (listed "
                          "above, as `--dry-run` shows them); nothing was launched")
    study_dir = results_dir(args.overrides) / "runs" / args.study
    skipped = 0 if rerun else sum(1 for j in states if j.state == "done")
    if args.launcher == "slurm":
        from harness.slurm import run_study

        planned = [c for c in cmds if c[2] == "harness.atlas"]
        return max(run_all(planned), run_study(args.study, states, args.overrides, study_dir, rerun, skipped))
    with Progress(args.study, study_dir, len(states), skipped):
        return run_all(cmds)


def run_all(cmds: list[list[str]]) -> int:
    """Run the commands one after another. Each runs in its own process group, so that a
    SIGTERM or Ctrl-C of the sweep reaches every process of the job (launcher workers too),
    and the sweep waits for them to stop before it exits."""
    status = 0
    for cmd in cmds:
        print("+", " ".join(cmd[1:]), flush=True)
        child = subprocess.Popen(cmd, start_new_session=True)
        try:
            status = max(status, child.wait())
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (harness.command.Stopped)
            stop(child, getattr(exc, "signum", signal.SIGINT))
            raise
    return status


def stop(child: subprocess.Popen, signum: int, grace_s: float = 30.0) -> None:
    """Send `signum` to the child's process group; kill the group if it outlives `grace_s`."""
    try:
        os.killpg(child.pid, signum)
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
