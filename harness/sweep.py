"""`python -m harness.sweep <study>`: run every experiment config of a study (`make sweep`).

A study is every experiment config (`configs/experiment/<study>/<variant>.yaml`) that declares
`study: <name>`: one file when its sweep is a product of options (Hydra's basic sweeper),
several when it is not (tiling_budget: one per strategy family). A config with an `atlas`
block is planned by `harness.atlas` instead of run. Finished jobs are skipped (resume), so
rerunning a study runs what is missing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.command import guarded
from harness.config import ConfigError, choices, experiment
from harness.store import find_failed, find_runs


def study_experiments(study: str) -> list[str]:
    """The experiment configs (names) that declare `study: <study>`."""
    return [name for name in choices("experiment") if experiment(name).get("study") == study]


def known_studies() -> list[str]:
    return sorted({str(s) for name in choices("experiment") if (s := experiment(name).get("study"))})


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
    """One overall line for a sweep: jobs finished (complete or failed folders of the study
    that appeared since the start, plus those done before) out of the study's jobs, with an
    ETA from the pace so far. Polls the study folder from a background thread."""

    def __init__(self, study_dir: Path, total: int, done_before: int, every_s: float = 2.0) -> None:
        self.study_dir, self.total, self.done_before, self.every_s = study_dir, total, done_before, every_s
        self.start = time.monotonic()
        self.before = self._finished()
        self.shown = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _finished(self) -> set[Path]:
        return set(find_runs(self.study_dir)) | set(find_failed(self.study_dir)) if self.study_dir.is_dir() else set()

    def line(self) -> tuple[int, str]:
        """(jobs done, the progress line)."""
        new = len(self._finished() - self.before)
        done = min(self.total, self.done_before + new)
        elapsed = time.monotonic() - self.start
        left = self.total - done
        eta = "finished" if not left else (f"ETA {_duration(elapsed / new * left)}" if new else "ETA ?")
        return done, (f"[sweep] {done}/{self.total} jobs done ({self.done_before} before this sweep), "
                      f"elapsed {_duration(elapsed)}, {eta}")

    def show(self, force: bool = False) -> None:
        done, line = self.line()
        if force or done != self.shown:
            print(line, file=sys.stderr, flush=True)
            self.shown = done

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


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study name (the `study:` of experiment configs)")
    parser.add_argument("--launcher", default="basic", help="basic, joblib, submitit_local, slurm")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the study's jobs and which a run would skip (complete already); run nothing")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder.size=tiny")
    args = parser.parse_intermixed_args(argv)
    return guarded(lambda: sweep(args), "harness.sweep")


def sweep(args: argparse.Namespace) -> int:
    cmds = commands(args.study, args.launcher, args.overrides)
    from harness.status import JobState, job_lines, results_dir, study_states, summary_line

    states = study_states(args.study, args.overrides)
    if args.dry_run:
        rerun = any(o.split("=", 1)[0] == "rerun" and o.split("=", 1)[1].lower() == "true" for o in args.overrides)

        def action(job: JobState) -> str:
            return f"{'skip (complete)' if job.state == 'done' and not rerun else f'run ({job.state})':<18}"

        print("\n".join(job_lines(states, show_done=True, action=action)))
        print(summary_line(args.study, states))
        return 0
    study_dir = results_dir(args.overrides) / "runs" / args.study
    with Progress(study_dir, len(states), sum(1 for j in states if j.state == "done")):
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
