"""Running a prepared Job: resume check, model load, the runner, quality metrics, the store.

Returns what happened as an `Outcome` value (no module state, no tags on exceptions), so the
command decides exit codes and a sweep can go on after a failure.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import ConfigError, compose
from harness.encoders.weights import WeightsError
from harness.folders import FolderError, check_writable, clean_leftovers
from harness.metrics.run_quality import quality_records
from harness.pipeline.failures import failure_lines, lost
from harness.pipeline.identity import new_run_id
from harness.pipeline.job import Job, config_identity, fallback_hash, prepare_job
from harness.pipeline.runner import Runner
from harness.pipeline.store import TMP_PREFIX, RunStore, claim_config, records_frame
from harness.types import Record

log = logging.getLogger("harness")


class LoadError(RuntimeError):
    """The model or its weights could not be loaded (recorded as `error:load`)."""


@dataclass(frozen=True)
class Outcome:
    """What one job did: `ok`, `skipped` (complete already), `lost_images` / `lost_answers`
    (written, but more images / questions failed than `max_error_fraction` allows) or
    `error:<kind>` (a FAILED folder: the job raised, or no image was encoded (`no_image`) or
    no question answered (`no_answer`))."""

    status: str
    run_dir: Path
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "skipped")


def failure_kind(exc: BaseException) -> str:
    """`config`, `oom`, `load` (weights or files) or `exception`: the `error:<kind>` of a failed job."""
    import torch

    if isinstance(exc, LoadError):
        return "load"
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower():
        return "oom"
    return "exception"


def write_failure(config: dict[str, Any], exc: BaseException, job: Job | None = None) -> Outcome:
    """A failed job leaves a FAILED run folder (one `kind=run` error row) that resume retries;
    a job whose folder cannot be written (`FolderError`) leaves nothing and says so."""
    chash = job.config_hash if job is not None else fallback_hash(config)
    run_id = new_run_id(chash)
    identity = job.identity(run_id) if job is not None else config_identity(config, run_id, chash)
    run_dir = Path(config["results_dir"]) / "runs" / str(config["study"]) / run_id
    if isinstance(exc, FolderError):  # nothing was written: the outcome names the study folder
        log.error("%s: %s", identity["config_label"], exc)
        return Outcome("error:write", run_dir.parent, f"{identity['config_label']}: {exc}")
    kind = failure_kind(exc)
    message = f"{type(exc).__name__}: {exc}"
    record = Record(kind="run", identity=identity, status=f"error:{kind}", message=message)
    try:
        RunStore(run_dir).write_failure(record, config, "".join(traceback.format_exception(exc)))
    except FolderError as write_error:
        message = f"{message} (and no FAILED folder: {write_error})"
    log.error("%s failed (error:%s): %s -> %s", identity["config_label"], kind, message, run_dir)
    return Outcome(f"error:{kind}", run_dir, message)


def lost_items(records: pd.DataFrame | list[Record], max_error_fraction: float) -> tuple[str, str]:
    """(`lost_images` or `lost_answers`, why) when more images or questions failed than
    `max_error_fraction` allows, else ("", ""); from a run's records (in memory or read back),
    so a resumed run is judged the same way (`harness.pipeline.failures.lost`)."""
    return lost(records_frame(records) if isinstance(records, list) else records, max_error_fraction)


def resumed(job: Job, done: Path) -> Outcome | None:
    """The outcome of this job's complete run `done`, read back from its records (None: run it
    again). A complete folder whose records cannot be read is run again, with a warning."""
    try:
        records = RunStore(done).records()
    except Exception as exc:  # noqa: BLE001 - any unreadable parquet: measure again
        print(f"warning: {done}: records unreadable ({type(exc).__name__}), running this job again",
              file=sys.stderr)
        return None
    log.info("skip %s: records complete in %s (rerun=true runs it again)", job.config_hash, done)
    print(f"records: {done} (skipped, complete)")
    status, why = lost_items(records, job.config["max_error_fraction"])
    if status:
        return Outcome(status, done, f"(skipped, as when it ran) {why}")
    return Outcome("skipped", done)


def execute(job: Job) -> Outcome:
    """Run one prepared job and write its records. A job whose records are complete already is
    skipped (unless `rerun=true`) and reports as its run did. The configuration's lock is held
    from that lookup to the publication, so the same job started twice at once computes once:
    the second waits, then skips. Load failures raise `LoadError`."""
    check_writable(job.study_dir)  # a read-only or full disk fails now, not after the computation

    def waiting(owner: dict[str, Any]) -> None:
        log.info("%s is being computed by pid %s on %s; waiting for it", job.config_hash, owner.get("pid"),
                 owner.get("host"))

    with claim_config(job.study_dir, job.config_hash, rerun=bool(job.config.get("rerun", False)),
                      on_wait=waiting) as done:
        outcome = resumed(job, done) if done is not None else None
        return outcome if outcome is not None else _compute(job)


def _compute(job: Job) -> Outcome:
    """Load the model, run, write the run folder (the caller holds the configuration's lock)."""
    for path in clean_leftovers(job.study_dir, TMP_PREFIX):
        log.info("removed %s (left by a process that is gone)", path)
    run_id = new_run_id(job.config_hash)
    try:
        encoder = job.encoder_cls(runtime=job.runtime, **job.encoder_kwargs)
        encoder.use_reduction(job.reducer)
    except WeightsError as exc:  # no cache and no network, or a checkpoint that does not fit
        raise LoadError(str(exc)) from exc
    except Exception as exc:
        raise LoadError(f"{type(exc).__name__}: {exc}") from exc
    answerer = None
    if job.answerer_cls is not None:
        try:
            answerer = job.answerer_cls(runtime=job.runtime, **job.answerer_kwargs)
        except WeightsError as exc:
            raise LoadError(str(exc)) from exc
        except Exception as exc:
            raise LoadError(f"{type(exc).__name__}: {exc}") from exc
    weights_mb = sum(p.numel() * p.element_size() for p in encoder.model.parameters()) / 2**20
    identity = job.identity(run_id, encoder.identity(), answerer.identity() if answerer else None)
    runner = Runner(
        job.dataset, job.strategy, encoder, identity,
        num_workers=job.config["num_workers"], progress=job.config["progress"],
        timing_repeats=job.config.get("timing_repeats", 1), answerer=answerer,
        batch_images=job.config.get("batch_images"),
    )
    result = runner.run()
    run_row = next(r for r in result.records if r.kind == "run")
    summary = run_row.values
    run_dir = job.study_dir / run_id
    if run_row.status != "ok":  # no image encoded or no question answered: FAILED, so resume retries it
        RunStore(run_dir).write_failure(run_row, job.config, failure_lines(records_frame(result.records)))
        log.error("%s failed (%s): %s -> %s", identity["config_label"], run_row.status, run_row.message, run_dir)
        return Outcome(run_row.status, run_dir, run_row.message)
    summary["weights_mb"] = weights_mb  # model weights, apart from the peaks measured while running
    if answerer is not None:  # the language model's, apart from the encoder's
        summary["lm_weights_mb"] = sum(p.numel() * p.element_size() for p in answerer.lm.parameters()) / 2**20
    result.records.extend(quality_records(result.embeddings, result.embedding_labels, identity))
    cached = (result.embedding_ids, result.embeddings) if job.config.get("cache_embeddings", True) else None
    RunStore(run_dir).write(result.records, job.config, cached)  # FolderError: write_failure names the job
    questions = (f", {summary['n_questions']} questions ({summary['n_question_errors']} errors)"
                 if "n_questions" in summary else "")
    log.info(
        "%s: %d images (%d errors)%s, %.0f visual tokens/image, encode p50 %.1f ms -> %s",
        identity["config_label"], summary["n_images"], summary["n_errors"], questions, summary["visual_tokens_mean"],
        summary["encode_p50_ms"], run_dir,
    )
    print(f"records: {run_dir}")
    status, why = lost_items(result.records, job.config["max_error_fraction"])
    return Outcome(status, run_dir, why) if status else Outcome("ok", run_dir)


def run(overrides: Sequence[str]) -> Outcome:
    """One configuration from command-line style overrides, in this process: the library form
    of `python -m harness` (config errors raise `ConfigError`, load failures `LoadError`)."""
    return execute(prepare_job(compose(overrides)))
