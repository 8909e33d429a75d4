"""`python -m harness` / `harness-run`: run one configuration (or a Hydra sweep with -m).

The command only: it validates the command line, lets Hydra compose each job, prepares it
(`harness.pipeline.job`, every check before any model loads) and executes it (`harness.pipeline.execute`), then
turns the outcomes into exit codes: 2 for a config error in a single run, 1 when a job failed
(a sweep job's error, no image encoded, no question answered) or lost more images or questions
than `max_error_fraction` allows (docs/guarantees.md).
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from harness.command import guarded, wants_help
from harness.config import CONFIG_DIR, ConfigError, results_dir_of, validate_overrides
from harness.folders import check_writable
from harness.pipeline.execute import Outcome, execute, write_failure
from harness.pipeline.job import Job, prepare_job


def run_config(cfg: DictConfig, *, multirun: bool) -> Outcome:
    """Prepare and execute one composed config. A config error ends a single run (exit 2);
    inside a sweep every failure becomes a FAILED folder and the sweep goes on."""
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    job: Job | None = None
    try:
        job = prepare_job(config)
        return execute(job)
    except ConfigError as exc:
        if not multirun:
            raise
        return write_failure(config, exc, job)
    except Exception as exc:  # noqa: BLE001 - one failed job must not end the sweep
        return write_failure(config, exc, job)


def main() -> None:
    sys.exit(guarded(_main, "harness"))


def _main() -> int:
    # Checked before Hydra runs: Hydra creates its output folder from `study` first thing.
    sys.argv = [sys.argv[0], *validate_overrides(sys.argv[1:])]
    if not wants_help(sys.argv[1:]):
        check_writable(results_dir_of(sys.argv[1:]))  # Hydra writes its folder there first
    outcomes: list[Outcome] = []

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
    def task(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        try:
            outcomes.append(run_config(cfg, multirun=multirun))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    task()
    failed = [o for o in outcomes if o.failed]
    if len(outcomes) == 1 and failed and failed[0].status == "error:write":  # a full or read-only disk
        print(f"error: {failed[0].message}", file=sys.stderr)  # one line: the folder and the cause
        return 1
    if failed:
        lines = [f"{o.run_dir}: {o.status}: {o.message}" for o in failed]
        print("error: jobs failed or lost images or answers:\n" + "\n".join(lines), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main()
