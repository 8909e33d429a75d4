"""`python -m harness.sweep <study>`: run every experiment config of a study (`make sweep`).

A study is every `configs/experiment/*.yaml` that declares `study: <name>`: one file when its
sweep is a product of options (Hydra's basic sweeper), several when it is not (tiling_budget:
one per strategy family). A config with an `atlas` block is planned by `harness.atlas`
instead of run. Finished jobs are skipped (resume), so rerunning a study runs what is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from harness.config import choices, experiment


def study_experiments(study: str) -> list[str]:
    """The experiment configs (names) that declare `study: <study>`."""
    return [name for name in choices("experiment") if experiment(name).get("study") == study]


def known_studies() -> list[str]:
    return sorted({str(s) for name in choices("experiment") if (s := experiment(name).get("study"))})


def commands(study: str, launcher: str, extra: list[str]) -> list[list[str]]:
    """The commands that run a study, in order."""
    experiments = study_experiments(study)
    if not experiments:
        raise SystemExit(f"error: unknown study {study!r}; valid: {', '.join(known_studies())}")
    if launcher not in choices("hydra/launcher"):
        raise SystemExit(f"error: unknown launcher {launcher!r}; valid: {', '.join(choices('hydra/launcher'))}")
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
    status = 0
    for cmd in commands(args.study, args.launcher, args.overrides):
        print("+", " ".join(cmd[1:]), flush=True)
        status = max(status, subprocess.call(cmd))
    return status


if __name__ == "__main__":
    sys.exit(main())
