"""A job: one configuration resolved into the objects that will run it, before any model loads.

Every entry point (`harness`, `harness.tokens`, `harness.mme_baseline`, sweeps) turns its
config into a `Job` here, so all of them validate the same way and fail with the same one-line
errors. A job's identity (record columns) and its resume key are read from the objects that
run, not from the config text: `preprocess=native` and the explicit strategy it resolves to
build the same Strategy, so they are the same job (same columns, same hash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.benchmarks import get_benchmark
from harness.bounds import boolean, bounded_float, bounded_int, optional_int
from harness.config import ENCODER_RUN_OPTIONS, ConfigError
from harness.data import DATASETS, build_dataset
from harness.data.base import Dataset
from harness.encoders import ENCODERS, Encoder
from harness.encoders.weights import check_weights_folder
from harness.folders import check_name
from harness.pipeline.identity import component_columns, config_hash, git_commit, package_versions
from harness.pipeline.runner import MAX_BATCH_IMAGES, MAX_TIMING_REPEATS, resolve_num_workers
from harness.preprocess import STRATEGIES, build_strategy
from harness.preprocess.base import Strategy
from harness.reduce import Reducer, build_reducer
from harness.registry import UnknownChoiceError, check_kwargs, keyword_params
from harness.runtime import Runtime
from harness.vlm import VLMS, Answerer

# Options that change how a job runs or reports, never what it measures: not in the resume key.
VOLATILE_KEYS = ("progress", "results_dir", "num_workers", "rerun", "max_error_fraction", "cache_embeddings")
# Config groups that become objects; their key part is what the object reports.
COMPONENT_KEYS = ("encoder", "preprocess", "dataset", "reduce")
# Options added after runs were recorded whose null means "as before": left out of the key while
# null, so that those runs keep their hashes (resume still finds them).
NULL_AS_BEFORE = ("batch_images",)


def strategy_params(config: dict[str, Any], encoder_cls: type[Encoder]) -> dict[str, Any]:
    """The strategy name and parameters: `native` becomes the encoder's own strategy; null
    tile_size/mean/std take the encoder's; other nulls take the strategy's defaults."""
    pp = {k: v for k, v in dict(config["preprocess"]).items() if v is not None}
    if pp.get("name") == "native":
        pp = {**encoder_cls.native_strategy_params, **pp, "name": encoder_cls.native_strategy}
    # A strategy whose views have their own size (qwen_native) is not given the encoder's tile.
    variable = pp.get("name") in STRATEGIES.names() and STRATEGIES.get(pp["name"]).variable_size
    for key, default in (("tile_size", encoder_cls.tile_size), ("mean", encoder_cls.mean), ("std", encoder_cls.std)):
        if not (key == "tile_size" and variable):
            pp.setdefault(key, list(default) if isinstance(default, tuple) else default)
    return pp


@dataclass
class Job:
    """A validated configuration: everything but the model, which `Encoder(**encoder_kwargs)` builds."""

    config: dict[str, Any]
    runtime: Runtime
    dataset: Dataset
    strategy: Strategy
    encoder_cls: type[Encoder]
    encoder_kwargs: dict[str, Any]
    reducer: Reducer | None = None  # None: reduce=none (no key part, no columns: today's jobs)
    answerer_cls: type[Answerer] | None = None  # vlm=none: encoder only
    answerer_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def study(self) -> str:
        return str(self.config["study"])

    @property
    def study_dir(self) -> Path:
        return Path(self.config["results_dir"]) / "runs" / self.study

    def key(self) -> dict[str, Any]:
        """What identifies this job's results: each component as its object reports it, plus the
        other non-volatile options (device resolved)."""
        rest = {k: v for k, v in self.config.items()
                if k not in (*VOLATILE_KEYS, *COMPONENT_KEYS, "device", "vlm")
                and not (k in NULL_AS_BEFORE and v is None)}
        vlm = {} if self.answerer_cls is None else {
            "vlm": self.answerer_cls.key_of(self.answerer_cls.options(**self.answerer_kwargs))}
        return {
            **vlm,
            **rest,
            "device": str(self.runtime.device),
            "encoder": {"name": self.encoder_cls.name, **self.encoder_cls.options(**self.encoder_kwargs)},
            "preprocess": {"name": self.strategy.name, **self.strategy.params()},
            "dataset": {"name": self.dataset.name, **self.dataset.params(), "fingerprint": self.fingerprint},
            **({"reduce": {"name": self.reducer.name, **self.reducer.params()}} if self.reducer else {}),
        }

    @cached_property
    def fingerprint(self) -> str:
        """The data as it is now (`Dataset.fingerprint`): new or changed images make a new job."""
        return self.dataset.fingerprint()

    @cached_property
    def config_hash(self) -> str:
        return config_hash(self.key())

    def identity(self, run_id: str, encoder_identity: dict[str, Any] | None = None,
                 answerer_identity: dict[str, Any] | None = None) -> dict[str, Any]:
        """The columns every row of this job's run carries. `encoder_identity` is the running
        encoder's (`Encoder.identity()`); without one, what the encoder class says of these options.
        Likewise `answerer_identity` (`Answerer.identity()`) when the job has a VLM."""
        encoder = encoder_identity or self.encoder_cls.describe(self.encoder_cls.options(**self.encoder_kwargs))
        ident = run_identity(
            run_id=run_id, study=self.study, chash=self.config_hash, encoder=encoder,
            strategy=self.strategy.identity(), dataset=self.dataset.identity(),
            reduce=self.reducer.identity() if self.reducer else {},
            runtime={"device": str(self.runtime.device), "dtype": self.runtime.dtype_name},
            options={k: self.config.get(k) for k in ("seed", "batch_views", "batch_images")},
        )
        if self.answerer_cls is not None:
            ident.update(answerer_identity or self.answerer_cls.describe(
                self.answerer_cls.options(**self.answerer_kwargs)))
            ident["config_label"] += f"+{self.answerer_cls.name}"
        return ident


def run_identity(
    *, run_id: str, study: Any, chash: str, encoder: dict[str, Any], strategy: dict[str, Any],
    dataset: dict[str, Any], runtime: dict[str, Any], options: dict[str, Any], reduce: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one builder of a run's identity columns, for finished and failed runs alike."""
    return {
        "run_id": run_id, "study": study, "config_hash": chash, "git_commit": git_commit(), **package_versions(),
        **encoder, **strategy, **dataset, **(reduce or {}), **runtime, **options,
        "config_label": f"{encoder.get('encoder')}/{strategy.get('strategy')}"
                        + (f"/{reduce['reduce']}" if reduce and reduce.get("reduce") else ""),
    }


def check_run_options(config: dict[str, Any]) -> None:
    """The top-level options every job has: names that become folders are safe, numbers are in
    range (an integer written `1e30`, `1.5` or `true` is refused, never truncated), switches are
    booleans (encoder options such as seed and batch_views are checked by the encoder class,
    num_workers by `resolve_num_workers`)."""
    check_name(config["study"], "study")
    bounded_float("max_error_fraction", config["max_error_fraction"], 0.0, 1.0)
    bounded_int("timing_repeats", config.get("timing_repeats", 1), 1, MAX_TIMING_REPEATS)
    optional_int("batch_images", config.get("batch_images"), 1, MAX_BATCH_IMAGES)
    for key in ("progress", "rerun", "cache_embeddings"):
        if key in config:
            boolean(key, config[key])


def prepare_job(config: dict[str, Any]) -> Job:
    """Build everything but the model, so that any config error surfaces before loading."""
    try:
        check_run_options(config)
        runtime = Runtime.resolve(config["device"], config["dtype"])
        dataset_cfg = dict(config["dataset"])
        dataset = build_dataset(dataset_cfg.pop("name"), **dataset_cfg)
        encoder_cls = ENCODERS.get(config["encoder"]["name"])
        pp = strategy_params(config, encoder_cls)
        strategy = build_strategy(pp.pop("name"), **pp)
        if not strategy.variable_size:
            encoder_cls.check_tile_size(strategy.tile_size, strategy.name)
        encoder_kwargs = {k: v for k, v in config["encoder"].items() if k != "name"}
        encoder_kwargs.update({k: config[k] for k in ENCODER_RUN_OPTIONS if k in config})
        check_kwargs(encoder_cls, {**encoder_kwargs, "runtime": None}, f"encoder {encoder_cls.name!r}")
        encoder_cls.check_options(**encoder_kwargs)
        # damaged files of a local checkpoint folder: named now, before any model is built
        check_weights_folder(encoder_cls.checkpoint_formats, str(encoder_kwargs.get("weights", "random")))
        # An encoder/strategy pairing that cannot work fails here, before any model loads.
        probe = strategy.plan(2 * strategy.tile_size, strategy.tile_size)
        encoder_cls.check_layout(probe, encoder_kwargs.get("connector"))
        reducer = build_job_reducer(config)
        encoder_cls.check_reduction(reducer, encoder_kwargs.get("connector"))
        resolve_num_workers(config.get("num_workers", 0), runtime.device.type == "cuda")  # "auto" or an int >= 0
        answerer_cls, answerer_kwargs = prepare_answerer(config, encoder_cls, encoder_kwargs, dataset)
        if answerer_cls is not None and dataset.benchmark is None:
            with_questions = [n for n in DATASETS.names() if DATASETS.get(n).benchmark is not None]
            raise ConfigError(f"vlm={answerer_cls.name} answers questions, but dataset {dataset.name!r} has none: "
                              f"use a dataset with questions ({', '.join(with_questions)}) or vlm=none")
    except (ValueError, UnknownChoiceError) as exc:
        raise ConfigError(str(exc)) from exc
    return Job(config, runtime, dataset, strategy, encoder_cls, encoder_kwargs, reducer, answerer_cls, answerer_kwargs)


def build_job_reducer(config: dict[str, Any]) -> Reducer | None:
    """The `reduce` group as a Reducer; None for `reduce=none` (or a config without the group)."""
    rd = {k: v for k, v in dict(config.get("reduce") or {"name": "none"}).items() if v is not None}
    reducer = build_reducer(rd.pop("name"), **rd)
    return None if reducer.name == "none" else reducer


def prepare_answerer(
    config: dict[str, Any], encoder_cls: type[Encoder], encoder_kwargs: dict[str, Any], dataset: Dataset | None = None,
) -> tuple[type[Answerer] | None, dict[str, Any]]:
    """The VLM answerer class and its kwargs (`vlm=none`: none), checked before any model
    loads: the protocol against the dataset's benchmark (whose limit a null max_new_tokens
    becomes), its connector, the connector's width against the LM's hidden size, and the
    checkpoint's config, LM tensors and tokenizer (a WeightsError names what is missing)."""
    vlm = dict(config.get("vlm") or {"name": "none"})
    name = vlm.pop("name")
    if name == "none":
        return None, {}
    cls = VLMS.get(name)
    kwargs = {**vlm, "attn": config.get("attn", "sdpa"), "seed": config["seed"]}
    check_kwargs(cls, {**kwargs, "runtime": None}, f"vlm {name!r}")
    cls.check_options(**kwargs)
    benchmark = getattr(dataset, "benchmark", None)
    if benchmark is not None:
        bench = get_benchmark(benchmark)
        bench.check_protocol(kwargs["protocol"])
        if kwargs.get("max_new_tokens") is None:
            kwargs["max_new_tokens"] = bench.max_new_tokens(kwargs["protocol"])
    connector = encoder_kwargs.get("connector") or encoder_cls.native_connector
    if connector != cls.connector:
        raise ConfigError(f"vlm={name} takes the {cls.connector!r} connector's tokens; encoder {encoder_cls.name!r} "
                          f"uses {connector!r}: set encoder.connector={cls.connector}")
    if kwargs["weights"] != "random":
        cls.open_checkpoint(kwargs["weights"]).check(kwargs["attn"])
    width = int(encoder_kwargs.get("out_dim") or encoder_cls.lm_dim[encoder_kwargs.get("size", "full")])
    hidden = cls.hidden_size_for(kwargs["weights"], kwargs["size"])
    if width != hidden:
        raise ConfigError(f"connector {connector!r} makes {width}-wide tokens but vlm={name}'s language model "
                          f"({kwargs['weights']}) is {hidden} wide: set encoder.out_dim={hidden} or matching sizes")
    return cls, kwargs


def config_identity(config: dict[str, Any], run_id: str, chash: str) -> dict[str, Any]:
    """Identity columns of a job that could not be prepared (a failed job in a sweep): the
    same builder as `Job.identity`, fed with what the config text says."""
    enc, pp, ds = (dict(config.get(k) or {}) for k in ("encoder", "preprocess", "dataset"))
    encoder_cls: type[Encoder] | None
    try:
        encoder_cls = ENCODERS.get(str(enc.get("name")))
    except UnknownChoiceError:
        encoder_cls = None
    if encoder_cls is not None:
        with_defaults = {k: v for k, v in enc.items() if k in keyword_params(encoder_cls)}
        encoder = encoder_cls.describe(encoder_cls.options(**with_defaults))
    else:
        encoder = {"encoder": enc.get("name"), "encoder_size": enc.get("size"), "weights": enc.get("weights")}
    strategy = component_columns("strategy", pp.pop("name", None), {k: v for k, v in pp.items() if v is not None})
    dataset = component_columns("dataset", ds.pop("name", None), ds)
    try:
        reducer = build_job_reducer(config)
        reduce = reducer.identity() if reducer else {}
    except (ValueError, UnknownChoiceError):
        reduce = dict(config.get("reduce") or {})
        reduce = {"reduce": reduce.pop("name", None), "reduce_params": str(reduce)} if reduce else {}
    return run_identity(
        run_id=run_id, study=config.get("study"), chash=chash, encoder=encoder, strategy=strategy, dataset=dataset,
        reduce=reduce,
        runtime={"device": config.get("device"), "dtype": config.get("dtype")},
        options={k: config.get(k) for k in ("seed", "batch_views", "batch_images")},
    )


def fallback_hash(config: dict[str, Any]) -> str:
    """The hash of a job that could not be prepared: its config without volatile keys."""
    unreduced = (config.get("reduce") or {}).get("name", "none") == "none"  # reduce=none: today's hashes
    skip = (*VOLATILE_KEYS, "reduce") if unreduced else VOLATILE_KEYS
    return config_hash({k: v for k, v in config.items() if k not in skip})
