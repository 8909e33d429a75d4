"""What a preprocessing arm costs in answers, across benchmarks: each study-table row's main
benchmark score (the benchmark's own `main_metrics`, e.g. MME perception + cognition, POPE F1),
and the `<study>_benchmarks` table: one row per arm (a configuration less its dataset), per
benchmark its main score, mean visual tokens and prefill p50. Read from study tables only."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from harness.benchmarks import BENCHMARKS, Benchmark

# Benchmarks in the order a paper lists them; others follow by name.
ORDER = ("mme", "pope", "textvqa", "docvqa", "chartqa", "mmbench")
# Per benchmark, the measures beside its score (study-table columns).
MEASURES = ("visual_tokens_mean", "prefill_p50_ms")
# What makes an arm (with the `pp_*` and `rd_*` columns); not the dataset, nor what follows from
# it (`vlm_max_new_tokens`: each benchmark's own limit under the protocol).
ARM_FIELDS = ("vlm", "vlm_weights", "vlm_size", "vlm_protocol", "encoder", "encoder_size", "weights", "connector",
              "attn", "pool", "strategy", "strategy_params", "reduce", "reduce_params", "device", "dtype", "seed",
              "batch_views")


def benchmark_of(dataset: object) -> Benchmark | None:
    """The registered benchmark a dataset name is, with a main score declared; else None."""
    if not isinstance(dataset, str) or dataset not in BENCHMARKS.names():
        return None
    bench = BENCHMARKS.get(dataset)()
    return bench if bench.main_metrics else None


def main_score(row: pd.Series) -> float:
    """The row's benchmark main score: the sum of its main metrics; NaN when one is missing."""
    bench = benchmark_of(row.get("dataset"))
    if bench is None:
        return math.nan
    values = [row.get(f"metric:{m}") for m in bench.main_metrics]
    return math.nan if any(v is None or pd.isna(v) for v in values) else float(sum(values))


# A strategy's budget parameter, the first of these its parameters hold.
BUDGET_KEYS = ("max_tiles", "grid_pinpoints", "max_pixels", "num_crops")


def _strategy_params(row: pd.Series) -> dict[str, Any]:
    text = row.get("strategy_params")
    return json.loads(text) if isinstance(text, str) and text.startswith("{") else {}


def _budget(params: dict[str, Any], strategy: str) -> str:
    """The strategy's budget in a few characters: `max 12 tiles`, `max 1280 tok`, `max 4 tiles`
    for a pinpoint set (its largest grid), else the strategy's name."""
    if params.get("max_tiles") is not None:
        return f"max {int(params['max_tiles'])} tiles"
    if params.get("grid_pinpoints"):
        tile = int(params.get("tile_size") or 336)
        return f"max {max(h * w for h, w in params['grid_pinpoints']) // (tile * tile)} tiles"
    if params.get("max_pixels") is not None:
        unit = (int(params.get("patch_size", 14)) * int(params.get("merge_size", 2))) ** 2
        return f"max {int(params['max_pixels']) // unit} tok"
    if params.get("num_crops") is not None:
        return f"{int(params['num_crops'])} crops"
    return strategy


def is_native(params: dict[str, Any], strategy: str) -> bool:
    """True when the budget parameter is the strategy's default: the model's own processor
    default for InternVL (12 tiles), LLaVA-NeXT (its five pinpoints) and Qwen2-VL (1280 x 28x28
    pixels), see experiments/benchmarks_by_strategy/README.md."""
    from harness.preprocess import STRATEGIES

    key = next((k for k in BUDGET_KEYS if params.get(k) is not None), None)
    if key is None or strategy not in STRATEGIES.names():
        return False
    default = STRATEGIES.get(strategy)(tile_size=params.get("tile_size")).params()
    return default.get(key) == params[key]


def arm_label(row: pd.Series) -> str:
    """A short name of the arm for points and table rows: the budget, `(native)` when it is the
    strategy's default, then the reduction (`max 12 tiles (native) +pool(2)`)."""
    params, strategy = _strategy_params(row), str(row.get("strategy", "?"))
    label = _budget(params, strategy) + (" (native)" if is_native(params, strategy) else "")
    reduce = row.get("reduce")
    if isinstance(reduce, str) and reduce != "none":
        rd: dict[str, Any] = {}
        if isinstance(row.get("reduce_params"), str) and row["reduce_params"].startswith("{"):
            rd = json.loads(row["reduce_params"])
        shown = ",".join(str(v) for v in rd.values() if isinstance(v, (int, float, str)))
        label += f" +{reduce}" + (f"({shown})" if shown else "")
    return label


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """The table's finished rows on a benchmark with a main score: `benchmark`, `score`, `arm`
    (see `arm_label`) and `family` (the VLM, else the encoder) added."""
    ok = table[table["status"] == "ok"] if "status" in table else table
    if "dataset" not in ok or ok.empty:
        return ok.iloc[0:0].assign(benchmark=[], score=[], arm=[], family=[])
    ok = ok[[benchmark_of(d) is not None for d in ok["dataset"]]]
    family = ok["vlm"] if "vlm" in ok else ok["encoder"]
    return ok.assign(benchmark=ok["dataset"], score=[main_score(r) for _, r in ok.iterrows()],
                     arm=[arm_label(r) for _, r in ok.iterrows()], family=family)


def benchmark_order(names: list[str]) -> list[str]:
    return sorted(set(names), key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def benchmarks_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm: `family`, `arm`, the arm's identity columns, then per benchmark
    `score:<b>`, `visual_tokens_mean:<b>`, `prefill_p50_ms:<b>` (an arm not run on a benchmark:
    missing there). Empty when no finished row has a main score."""
    rows = scores(table).dropna(subset=["score"])
    if rows.empty:
        return pd.DataFrame()
    keys = ["family", "arm", *[c for c in ARM_FIELDS if c in rows and c != "vlm"],
            *sorted(c for c in rows if c.startswith(("pp_", "rd_")))]
    keys = [c for c in dict.fromkeys(keys) if rows[c].notna().any()]
    out = None
    for bench in benchmark_order(list(rows["benchmark"])):
        part = rows[rows["benchmark"] == bench]
        cols = {"score": f"score:{bench}", **{m: f"{m}:{bench}" for m in MEASURES if m in part}}
        newest = part.sort_values("run_id" if "run_id" in part else "score")
        part = newest.groupby(keys, sort=False, dropna=False).tail(1)  # one row per arm and benchmark
        part = part[keys + list(cols)].rename(columns=cols)
        out = part if out is None else out.merge(part, on=keys, how="outer")
    return out.sort_values(["family", f"visual_tokens_mean:{benchmark_order(list(rows['benchmark']))[0]}"]
                           if "visual_tokens_mean" in rows else ["family", "arm"]).reset_index(drop=True)


def benchmark_labels(columns: list[str]) -> dict[str, str]:
    """`score:<b>` columns -> each benchmark's main label, in benchmark order."""
    names = [c.removeprefix("score:") for c in columns if c.startswith("score:")]
    return {f"score:{n}": BENCHMARKS.get(n).main_label for n in benchmark_order(names)}
