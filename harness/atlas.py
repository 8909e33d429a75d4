"""`python -m harness.atlas`: the token atlas. Visual tokens of every encoder x strategy over a
grid of image sizes and aspect ratios, from `Strategy.plan` alone (no pixels, no weights).

The grid is `n_sizes` aspect ratios (log-spaced, 1/8 .. 8) x `n_sizes` long sides (log-spaced,
`min_side` .. `max_side`): 10^6 sizes at the default n_sizes=1000. The table has one row per
(encoder, strategy, parameters, aspect ratio): tokens min / median / max over the long sides,
and at a 1024 px long side, so figures need no 10^6-row files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.config import ConfigError
from harness.config import experiment as experiment_config
from harness.encoders import ENCODERS
from harness.preprocess import STRATEGIES, build_strategy
from harness.reduce import Reducer
from harness.registry import UnknownChoiceError
from harness.types import Layout

MAX_ASPECT = 8.0
REFERENCE_SIDE = 1024


def token_counter(
    encoder_name: str, connector: str | None = None, reducer: Reducer | None = None,
) -> Callable[[Layout], int]:
    """A function layout -> visual tokens for this encoder (and connector, native by default,
    and token reduction, none by default) with no model built: the encoder's own analytic count,
    after its layout check (a layout the connector cannot take raises ValueError; so does an
    adaptive reduction, whose count needs pixels)."""
    encoder_cls = ENCODERS.get(encoder_name)
    encoder_cls.check_reduction(reducer, connector)

    def count(layout: Layout) -> int:
        encoder_cls.check_layout(layout, connector)
        n = encoder_cls.count_tokens(layout, connector, reducer)
        if n is None:
            raise ValueError(f"reduce={reducer.name if reducer else None} is adaptive: its count depends on the pixels")
        return n

    return count


def size_grid(min_side: int, max_side: int, n_sizes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aspect ratios, widths [n_aspect, n_side], heights [n_aspect, n_side]) of the grid."""
    aspects = np.geomspace(1 / MAX_ASPECT, MAX_ASPECT, n_sizes)
    sides = np.geomspace(min_side, max_side, n_sizes)
    long_w = aspects[:, None] >= 1
    widths = np.where(long_w, sides[None, :], sides[None, :] * aspects[:, None])
    heights = np.where(long_w, sides[None, :] / aspects[:, None], sides[None, :])
    return aspects, np.maximum(np.rint(widths), 1).astype(int), np.maximum(np.rint(heights), 1).astype(int)


def token_grid(plan: Callable[[int, int], Layout], count: Callable[[Layout], int],
               widths: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and executed views for every size of the grid (one `plan` per distinct size)."""
    tokens = np.empty(widths.shape, dtype=np.int64)
    views = np.empty(widths.shape, dtype=np.int64)
    cache: dict[tuple[int, int], tuple[int, int]] = {}
    for idx, (w, h) in enumerate(zip(widths.ravel().tolist(), heights.ravel().tolist(), strict=True)):
        hit = cache.get((w, h))
        if hit is None:
            layout = plan(w, h)
            hit = cache[(w, h)] = (count(layout), layout.executed_views)
        tokens.flat[idx], views.flat[idx] = hit
    return tokens, views


def build_atlas(spec: dict[str, Any], log: Callable[[str], None] = print) -> pd.DataFrame:
    """The atlas table for an `atlas` block (see configs/experiment/token_atlas.yaml)."""
    aspects, widths, heights = size_grid(int(spec["min_side"]), int(spec["max_side"]), int(spec["n_sizes"]))
    ref = int(np.argmin(np.abs(np.geomspace(spec["min_side"], spec["max_side"], spec["n_sizes"]) - REFERENCE_SIDE)))
    frames = []
    for entry in spec["encoders"]:
        # `name` (its connector from `connectors`, else native) or `name@connector`
        encoder_name, _, connector = str(entry).partition("@")
        try:
            encoder_cls = ENCODERS.get(encoder_name)
            count = token_counter(encoder_name, connector or (spec.get("connectors") or {}).get(encoder_name))
        except (UnknownChoiceError, ValueError) as exc:
            log(f"skip encoder {entry}: {exc}")
            continue
        for strategy_name, param_sets in spec["strategies"].items():
            if strategy_name not in STRATEGIES.names():
                log(f"skip strategy {strategy_name}: not registered (valid: {', '.join(STRATEGIES.names())})")
                continue
            for params in param_sets or [{}]:
                try:
                    tile = {} if STRATEGIES.get(strategy_name).variable_size else {"tile_size": encoder_cls.tile_size}
                    strategy = build_strategy(strategy_name, **tile, **params)
                except ValueError as exc:
                    log(f"skip {entry} x {strategy_name} {params}: {exc}")
                    continue
                t0 = time.perf_counter()
                try:
                    tokens, views = token_grid(strategy.plan, count, widths, heights)
                except ValueError as exc:  # e.g. the Phi-3 HD connector needs a phi3_hd layout
                    log(f"skip {entry} x {strategy_name} {params}: {exc}")
                    continue
                seconds = time.perf_counter() - t0
                log(f"{entry} x {strategy_name} {json.dumps(params, sort_keys=True)}: "
                    f"{tokens.size} sizes in {seconds:.2f} s")
                frames.append(pd.DataFrame({
                    "encoder": entry,
                    "strategy": strategy_name,
                    "strategy_params": json.dumps(params, sort_keys=True),
                    "aspect_ratio": aspects,
                    "tokens_min": tokens.min(axis=1),
                    "tokens_median": np.median(tokens, axis=1),
                    "tokens_max": tokens.max(axis=1),
                    f"tokens_at_{REFERENCE_SIDE}px": tokens[:, ref],
                    "views_max": views.max(axis=1),
                    "n_sides": tokens.shape[1],
                    "plan_seconds": seconds,
                }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_spec(experiment: str) -> dict[str, Any]:
    try:
        data = experiment_config(experiment)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if "atlas" not in data:
        raise SystemExit(f"error: experiment {experiment!r} has no `atlas` block")
    return data["atlas"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.atlas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="token_atlas", help="experiment config with an `atlas` block")
    parser.add_argument("--n-sizes", type=int, help="override atlas.n_sizes (grid is n_sizes^2 sizes)")
    parser.add_argument("--out", default="results/tables", help="folder for token_atlas.{parquet,csv}")
    args = parser.parse_args(argv)
    spec = load_spec(args.experiment)
    if args.n_sizes:
        spec["n_sizes"] = args.n_sizes
    t0 = time.perf_counter()
    table = build_atlas(spec)
    if table.empty:
        print("error: no encoder x strategy pair could be planned", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "token_atlas.parquet", index=False)
    table.to_csv(out / "token_atlas.csv", index=False)
    print(f"{len(table)} rows, {time.perf_counter() - t0:.1f} s -> {out / 'token_atlas.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
