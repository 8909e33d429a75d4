"""`python -m harness.sweep <study>`: run every experiment config of a study (`make sweep`).

A study is every `configs/experiment/*.yaml` that declares `study: <name>`: one file when its
sweep is a product of options (Hydra's basic sweeper), several when it is not (tiling_budget:
one per strategy family). A config with an `atlas` block is planned by `harness.atlas`
instead of run. Finished jobs are skipped (resume), so rerunning a study runs what is missing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from harness.command import guarded
from harness.config import ConfigError, choices, experiment


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study name (the `study:` of experiment configs)")
    parser.add_argument("--launcher", default="basic", help="basic, joblib, submitit_local, slurm")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder.size=tiny")
    args = parser.parse_intermixed_args(argv)
    return guarded(lambda: run_all(commands(args.study, args.launcher, args.overrides)), "harness.sweep")


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
