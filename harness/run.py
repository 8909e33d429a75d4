"""`python -m harness` / `harness-run`: run one configuration (or a Hydra sweep with -m).

Everything a config can get wrong is checked before any model loads: group choices (from the
command line, exit code 2 with the valid choices), then strategy, dataset, encoder parameters
and tile-size compatibility.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from harness.config import CONFIG_DIR, ConfigError, validate_overrides
from harness.data import build_dataset
from harness.data.base import Dataset
from harness.encoders import ENCODERS, Encoder
from harness.encoders.base import ENCODER_SIZES
from harness.encoders.weights import WeightsError
from harness.identity import config_hash, git_commit, new_run_id, package_versions
from harness.metrics.run_quality import quality_records
from harness.preprocess import build_strategy
from harness.preprocess.base import Strategy
from harness.registry import UnknownChoiceError, check_kwargs
from harness.runner import Runner
from harness.runtime import Runtime
from harness.store import RunStore, completed_run, resume_config
from harness.types import Record

log = logging.getLogger("harness")

# Keys of an encoder config that describe it rather than parameterise its class.
ENCODER_META_KEYS = ("name", "hf_id", "native_preprocess")

_failures: list[str] = []


@dataclass
class Job:
    """A validated configuration, ready to load its model and run."""

    config: dict[str, Any]
    runtime: Runtime
    dataset: Dataset
    strategy: Strategy
    encoder_cls: type[Encoder]
    encoder_kwargs: dict[str, Any]


def resolve_preprocess(cfg: dict[str, Any], encoder_cls: type[Encoder]) -> dict[str, Any]:
    """The strategy parameters: `native` takes the encoder's native strategy; null
    tile_size/mean/std take the encoder's."""
    pp = dict(cfg["preprocess"])
    if pp.get("name") == "native":
        native = dict(cfg["encoder"].get("native_preprocess") or {})
        if "name" not in native:
            raise ConfigError(f"encoder {encoder_cls.name!r} names no native_preprocess")
        native.update({k: v for k, v in pp.items() if k != "name" and v is not None})
        pp = native
    from harness.preprocess import STRATEGIES

    variable = pp.get("name") in STRATEGIES.names() and STRATEGIES.get(pp["name"]).variable_size
    for key, default in (("tile_size", encoder_cls.tile_size), ("mean", encoder_cls.mean), ("std", encoder_cls.std)):
        if key == "tile_size" and variable:  # views of their own size: the encoder's tile is not imposed
            continue
        if pp.get(key) is None:
            pp[key] = list(default) if isinstance(default, tuple) else default
    return pp


def prepare_job(cfg: DictConfig) -> Job:
    """Build everything but the model, so that any config error surfaces before loading."""
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    try:
        runtime = Runtime.resolve(config["device"], config["dtype"])
        dataset_cfg = dict(config["dataset"])
        dataset = build_dataset(dataset_cfg.pop("name"), **dataset_cfg)
        encoder_cls = ENCODERS.get(config["encoder"]["name"])
        pp = resolve_preprocess(config, encoder_cls)
        config["preprocess"] = pp
        pp_params = dict(pp)
        strategy = build_strategy(pp_params.pop("name"), **pp_params)
        if not strategy.variable_size:
            encoder_cls.check_tile_size(strategy.tile_size, strategy.name)
        encoder_kwargs = {k: v for k, v in config["encoder"].items() if k not in ENCODER_META_KEYS}
        encoder_kwargs.update(batch_views=config["batch_views"], seed=config["seed"], attn=config.get("attn", "sdpa"))
        batch_images = config.get("batch_images")
        if batch_images is not None and (isinstance(batch_images, bool) or not isinstance(batch_images, int)
                                         or batch_images <= 0):
            raise ConfigError(f"batch_images must be a positive integer or null; got {batch_images!r}")
        check_kwargs(encoder_cls, {**encoder_kwargs, "runtime": None}, f"encoder {encoder_cls.name!r}")
        # An encoder/strategy pairing that cannot work fails here, before any model loads.
        probe = strategy.plan(2 * strategy.tile_size, strategy.tile_size)
        encoder_cls.check_layout(probe, encoder_kwargs.get("connector"))
        encoder_cls.check_options(**encoder_kwargs)
        if encoder_kwargs.get("size") not in ENCODER_SIZES:
            valid = ", ".join(ENCODER_SIZES)
            raise ConfigError(f"encoder.size must be one of {valid}; got {encoder_kwargs.get('size')!r}")
    except (ValueError, UnknownChoiceError) as exc:
        raise ConfigError(str(exc)) from exc
    return Job(config, runtime, dataset, strategy, encoder_cls, encoder_kwargs)


def identity_of(job: Job, encoder_identity: dict[str, Any], run_id: str, chash: str) -> dict[str, Any]:
    """The columns every row of a run carries: run, code, encoder (`Encoder.identity()`, or
    what a job without an Encoder measures), strategy with its parameters, dataset, runtime."""
    pp = job.config["preprocess"]
    ident: dict[str, Any] = {
        "run_id": run_id,
        "study": job.config["study"],
        "config_hash": chash,
        "git_commit": git_commit(),
        **package_versions(),
        **encoder_identity,
        "strategy": job.strategy.name,
        "strategy_params": json.dumps({k: v for k, v in pp.items() if k != "name"}, sort_keys=True),
        "dataset": job.dataset.name,
        "dataset_params": json.dumps(job.dataset.params(), sort_keys=True),
        "device": str(job.runtime.device),
        "dtype": job.runtime.dtype_name,
        "seed": job.config["seed"],
        "batch_views": job.config["batch_views"],
        "batch_images": job.config.get("batch_images"),
    }
    for key, value in pp.items():
        if key != "name" and not isinstance(value, (list, dict)):
            ident[f"pp_{key}"] = value
    ident["config_label"] = f"{encoder_identity['encoder']}/{job.strategy.name}"
    return ident


def resume_key(cfg: DictConfig) -> tuple[dict[str, Any], str]:
    """The resolved config and its hash without volatile keys (`device=auto` resolved), the
    resume key: encoder weights id and harness version are part of it (`config_hash`)."""
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    key = resume_config(config)
    if key.get("device") == "auto":
        import torch

        key["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return config, config_hash(key)


def failure_kind(exc: BaseException) -> str:
    """`config`, `oom`, `load` (weights or files) or `exception`: the `error:<kind>` of a failed job."""
    import torch

    if getattr(exc, "_harness_stage", "") == "load":
        return "load"
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower():
        return "oom"
    return "exception"


def write_failure(cfg: DictConfig, exc: BaseException) -> Path:
    """A failed job leaves a FAILED run folder (one `kind=run` error row) that resume retries."""
    config, chash = resume_key(cfg)
    run_id = new_run_id(chash)
    kind = failure_kind(exc)
    enc, pp, ds = (config.get(k) or {} for k in ("encoder", "preprocess", "dataset"))
    identity = {
        "run_id": run_id, "study": config.get("study"), "config_hash": chash, "git_commit": git_commit(),
        **package_versions(), "encoder": enc.get("name"), "encoder_size": enc.get("size"),
        "weights": enc.get("weights"), "strategy": pp.get("name"),
        "strategy_params": json.dumps({k: v for k, v in pp.items() if k != "name"}, sort_keys=True, default=str),
        "dataset": ds.get("name"), "dtype": config.get("dtype"), "seed": config.get("seed"),
        "batch_views": config.get("batch_views"), "config_label": f"{enc.get('name')}/{pp.get('name')}",
    }
    message = f"{type(exc).__name__}: {exc}"
    record = Record(kind="run", identity=identity, status=f"error:{kind}", message=message)
    run_dir = Path(config["results_dir"]) / "runs" / str(config["study"]) / run_id
    RunStore(run_dir).write_failure(record, config, "".join(traceback.format_exception(exc)))
    log.error("%s failed (error:%s): %s -> %s", identity["config_label"], kind, message, run_dir)
    return run_dir


def run_job(cfg: DictConfig) -> Path:
    """Run one configuration and write its records; returns the run folder. A configuration
    whose records are complete already is skipped (unless `rerun=true`)."""
    _, chash = resume_key(cfg)
    if not cfg.get("rerun", False):
        done = completed_run(Path(cfg.results_dir) / "runs" / str(cfg.study), chash)
        if done is not None:
            log.info("skip %s: records complete in %s (rerun=true runs it again)", chash, done)
            print(f"records: {done} (skipped, complete)")
            return done
    job = prepare_job(cfg)
    run_id = new_run_id(chash)
    try:
        encoder = job.encoder_cls(runtime=job.runtime, **job.encoder_kwargs)
    except WeightsError as exc:  # no cache and no network, or a checkpoint that does not fit
        error = ConfigError(str(exc))
        error._harness_stage = "load"  # type: ignore[attr-defined]
        raise error from exc
    except Exception as exc:  # tagged so that the failure record says "load"
        exc._harness_stage = "load"  # type: ignore[attr-defined]
        raise
    weights_mb = sum(p.numel() * p.element_size() for p in encoder.model.parameters()) / 2**20
    identity = identity_of(job, encoder.identity(), run_id, chash)
    runner = Runner(
        job.dataset, job.strategy, encoder, identity,
        num_workers=job.config["num_workers"], progress=job.config["progress"],
        batch_images=job.config.get("batch_images"),
    )
    result = runner.run()
    summary = result.records[-1].values
    summary["weights_mb"] = weights_mb  # model weights, apart from the peaks measured while running
    result.records.extend(quality_records(result.embeddings, result.embedding_labels, identity))
    run_dir = Path(job.config["results_dir"]) / "runs" / job.config["study"] / run_id
    cached = (result.embedding_ids, result.embeddings) if job.config.get("cache_embeddings", True) else None
    RunStore(run_dir).write(result.records, job.config, cached)
    log.info(
        "%s: %d images (%d errors), %.0f visual tokens/image, encode p50 %.1f ms -> %s",
        identity["config_label"], summary["n_images"], summary["n_errors"], summary["visual_tokens_mean"],
        summary["encode_p50_ms"], run_dir,
    )
    print(f"records: {run_dir}")
    lost = [r for r in result.records if r.kind == "image" and r.status != "ok"]
    if lost and len(lost) / summary["n_images"] > job.config["max_error_fraction"]:
        _failures.append(
            f"{run_dir}: {len(lost)} of {summary['n_images']} images failed "
            f"(max_error_fraction={job.config['max_error_fraction']}):\n"
            + "\n".join(f"  {r.image_id}: {r.status} {r.message}" for r in lost)
        )
    return run_dir


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        run_job(cfg)
    except ConfigError as exc:
        if not multirun:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        _failures.append(f"{write_failure(cfg, exc)}: config error: {exc}")
    except Exception as exc:  # noqa: BLE001 - one failed job must not end the sweep
        _failures.append(f"{write_failure(cfg, exc)}: {type(exc).__name__}: {exc}")


def main() -> None:
    try:
        validate_overrides(sys.argv[1:])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    hydra_main()
    if _failures:
        print("error: jobs failed or lost images:\n" + "\n".join(_failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
