"""`harness-status` / `make status`: per study, which configurations are done, failed or missing.

The jobs of a study are the product of the sweeper params of each of its experiment configs
(what `harness.sweep` runs); each is prepared as the run command prepares it (no model loads)
and looked up by its resume key in `<results_dir>/runs/<study>/`: `done` (a complete folder),
`failed` (only FAILED folders), `missing` (no folder), or `invalid` (the job cannot be prepared
here, e.g. a dataset that is not downloaded; the reason is shown).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import ConfigError, compose, known_studies, study_experiments
from harness.config import experiment as config_experiment
from harness.pipeline.store import CONFIG, FAILED, RunStore, completed_run, find_failed, find_runs, hash_of

STATES = ("done", "failed", "missing", "invalid")


@dataclass(frozen=True)
class JobState:
    """One job of a study and what its results folder holds for it."""

    experiment: str
    overrides: tuple[str, ...]
    state: str
    config_hash: str | None = None
    run_dir: Path | None = None
    message: str = ""
    runnable: bool = True  # False: it cannot be prepared here (invalid, or failed before and invalid now)

    @property
    def name(self) -> str:
        return " ".join((f"experiment={self.experiment}", *self.overrides))


def experiment_jobs(experiment: str, extra: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """The override lists of an experiment's Hydra sweep: the product of its sweeper params and
    of any sweep in `extra` (e.g. `dtype=bfloat16,float32`); `extra` plain overrides apply to all."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    data = config_experiment(experiment)
    params = dict(((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    extra = [o for o in extra if not o.lstrip("+~").startswith("hydra")]  # launcher settings, not job content
    given = {o.get_key_element() for o in OverridesParser.create().parse_overrides(list(extra))}
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed
            if o.get_key_element() not in given]
    for o in OverridesParser.create().parse_overrides(list(extra)):
        if o.is_sweep_override():
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([o.input_line])
    return [tuple(combo) for combo in itertools.product(*axes)]


def results_dir(overrides: Sequence[str]) -> Path:
    """The results folder these overrides select (the last `results_dir=`, else the default)."""
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "results_dir"]
    return Path(given[-1] if given else compose([])["results_dir"])


def _failed_run(study_dir: Path, chash: str) -> Path | None:
    found = sorted(p for p in study_dir.glob(f"*-{chash}") if (p / FAILED).exists() and not p.name.startswith("."))
    return found[-1] if found else None


def failure_message(run_dir: Path) -> str:
    try:
        rows = RunStore(run_dir).records()
        run = rows[rows["kind"] == "run"]
        return f"{run['status'].iloc[0]}: {str(run['message'].iloc[0]).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - a damaged failure folder still counts as failed
        return f"unreadable records ({type(exc).__name__})"


def other_configurations(study_dir: Path, states: Sequence[JobState]) -> list[str]:
    """Config hashes with folders in the study folder that are no job of the study's configs
    now (runs with extra overrides, or of older code)."""
    planned = {j.config_hash for j in states}
    found = {hash_of(p) for p in (*find_runs(study_dir), *find_failed(study_dir))} if study_dir.is_dir() else set()
    return sorted(found - planned)


def job_state(experiment: str, overrides: tuple[str, ...], failed_by_config: dict[str, Path] | None = None,
              weights_check: Callable[[Any], str | None] | None = None) -> JobState:
    """Prepare one job (no model) and look its resume key up in its study folder. A job that
    cannot be prepared here is `invalid`, unless a sweep recorded it as failed
    (`failed_by_config`: FAILED folders by the hash of their config text, see `failed_configs`).
    `weights_check(job)` says why its weights cannot be had (then `invalid`), or None."""
    from harness.pipeline.job import fallback_hash, prepare_job

    config = None
    try:
        config = compose([f"experiment={experiment}", *overrides])
        job = prepare_job(config)
        problem = weights_check(job) if weights_check is not None else None
        if problem:
            raise ConfigError(problem)
    except (ConfigError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0]
        failed = (failed_by_config or {}).get(fallback_hash(config)) if config is not None else None
        if failed is not None:
            return JobState(experiment, overrides, "failed", hash_of(failed), failed,
                            f"{failure_message(failed)}; cannot run here now: {message}", runnable=False)
        return JobState(experiment, overrides, "invalid", message=message, runnable=False)
    chash = job.config_hash
    done = completed_run(job.study_dir, chash)
    if done is not None:
        return JobState(experiment, overrides, "done", chash, done)
    failed = _failed_run(job.study_dir, chash)
    if failed is not None:
        return JobState(experiment, overrides, "failed", chash, failed, failure_message(failed))
    return JobState(experiment, overrides, "missing", chash)


def failed_configs(study_dir: Path) -> dict[str, Path]:
    """The newest FAILED folder of a study per hash of its config text (without the volatile
    keys): how a job that cannot be prepared here (its dataset or weights are gone) is still
    found as failed, whatever hash its sweep gave it."""
    from harness.pipeline.job import fallback_hash

    found: dict[str, Path] = {}
    for run_dir in find_failed(study_dir) if study_dir.is_dir() else []:
        try:
            config = yaml.safe_load((run_dir / CONFIG).read_text()) or {}
            found[fallback_hash(config)] = run_dir  # sorted: the newest wins
        except (OSError, yaml.YAMLError, TypeError, ValueError):
            continue
    return found


def weights_checker() -> Callable[[Any], str | None]:
    """`check(job)`: why the job's encoder weights are neither local nor reachable, or None.
    The hub is probed once (a few seconds) for all jobs and each source is checked once."""
    from functools import cache

    from huggingface_hub import constants

    from harness.encoders.weights import hub_unreachable, unreachable

    user_offline = constants.HF_HUB_OFFLINE  # read now: planning runs inside `offline()`, which sets it

    @cache
    def hub_down() -> str | None:
        if user_offline:
            return "HF_HUB_OFFLINE is set"
        saved, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, False
        try:
            return hub_unreachable()
        finally:
            constants.HF_HUB_OFFLINE = saved

    @cache
    def source_problem(encoder_cls: Any, weights: str) -> str | None:
        source = encoder_cls.hf_id if weights == "pretrained" else weights
        return unreachable(source, [m for m, _ in encoder_cls.checkpoint_formats], hub_down)

    def check(job: Any) -> str | None:
        weights = str(job.encoder_kwargs.get("weights", "random"))
        return None if weights == "random" else source_problem(job.encoder_cls, weights)

    return check


@contextmanager
def offline() -> Iterator[None]:
    """No network while planning: a dataset or checkpoint that is not cached fails at once (the
    job is `invalid` here, with the reason) instead of retrying the hub for ~25 s per job."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    saved_env = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    patched = []
    for module in ("huggingface_hub.constants", "datasets.config"):
        if module in sys.modules and hasattr(sys.modules[module], "HF_HUB_OFFLINE"):
            patched.append((sys.modules[module], sys.modules[module].HF_HUB_OFFLINE))
            sys.modules[module].HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in patched:
            module.HF_HUB_OFFLINE = value
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def study_states(study: str, extra: Sequence[str] = (), check_weights: bool = False) -> list[JobState]:
    """Every job of a study (its experiment configs, without `atlas` ones) with its state,
    planned offline (datasets from the cache only). With `check_weights`, a job whose weights
    are neither local nor reachable is `invalid` too (the hub is probed once, not per job)."""

    failed = failed_configs(results_dir(extra) / "runs" / study)
    weights = weights_checker() if check_weights else None
    states = []
    with offline():
        for experiment in study_experiments(study):
            if "atlas" in config_experiment(experiment):
                continue
            states += [job_state(experiment, overrides, failed, weights)
                       for overrides in experiment_jobs(experiment, extra)]
    return states


def summary_line(study: str, states: Sequence[JobState]) -> str:
    counts = {s: sum(1 for j in states if j.state == s) for s in STATES}
    shown = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s != "invalid")
    return f"{study}: {len(states)} jobs: {shown}"


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="harness-status", description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help="studies (default: every study of configs/experiment)")
    parser.add_argument("--all", action="store_true", help="list done jobs too, not only the others")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="Hydra override applied to every job, e.g. -o results_dir=/scratch/r (repeatable)")
    args = parser.parse_args(argv)
    studies = args.studies or known_studies()
    unknown = [s for s in studies if s not in known_studies()]
    if unknown:
        print(f"error: unknown study {', '.join(unknown)}; valid: {', '.join(known_studies())}", file=sys.stderr)
        return 2
    for study in studies:
        states = study_states(study, args.override)
        if not states:
            print(f"{study}: no jobs (planned without a model, e.g. the token atlas)")
            continue
        others = other_configurations(results_dir(args.override) / "runs" / study, states)
        print(summary_line(study, states) + (f"; {len(others)} other configurations in its folder" if others else ""))
        for line in job_lines(states, show_done=args.all):
            print(line)
    return 0


def job_lines(states: Sequence[JobState], show_done: bool = False, action: Any = None) -> list[str]:
    """One line per job (done ones only with `show_done`), starting with `action(job)` (default:
    its state); a reason shared by several jobs (a dataset missing for all) is said once, after them."""
    shown = [j for j in states if j.state != "done" or show_done]
    shared = {m for m in (j.message for j in shown) if m and sum(j.message == m for j in shown) > 1}
    lines = []
    for job in shown:
        where = f" -> {job.run_dir}" if job.run_dir else ""
        why = f": {job.message}" if job.message and job.message not in shared else ""
        head = action(job) if action else f"  {job.state:<8}"
        lines.append(f"{head} {job.name}{where}{why}")
    for message in sorted(shared):
        lines.append(f"  ({sum(j.message == message for j in shown)} jobs above) {message}")
    return lines


def progress_line(study: str, total: int, skipped: int, counts: dict[str, int], elapsed_s: float) -> str:
    """The sweep's one line: jobs skipped (complete before, not rerun), then what happened to the
    others in this sweep (`counts`: submitted, pending, running where the launcher knows them;
    done and failed always), with an ETA from the pace so far."""
    ended = counts["done"] + counts["failed"]
    left = total - skipped - ended
    eta = "finished" if left <= 0 else (f"ETA {duration(elapsed_s / ended * left)}" if ended else "ETA ?")
    known = [f"{counts[k]} {k}" for k in ("submitted", "pending", "running") if k in counts]
    shown = ", ".join([*known, f"{counts['done']} done", f"{counts['failed']} failed", f"{max(left, 0)} left"])
    return (f"[sweep] {study}: {total} jobs, {skipped} skipped (complete); {shown}; "
            f"elapsed {duration(elapsed_s)}, {eta}")


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"

if __name__ == "__main__":
    sys.exit(main())
