"""Cross-run comparisons of pooled embeddings of the same images: linear CKA and mutual k-NN
between every pair of runs, and stability (per-image cosine) between runs of one encoder
(same size and weights) under different preprocessing strategies.

`compare_embeddings` is pure (it takes arrays); `compare_runs` / `compare_groups` are the thin
loaders the report step calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.quality import linear_cka, mutual_knn, stability_per_image
from harness.pipeline.store import RunStore

MUTUAL_KNN_K = 10
RUN_KEYS = ("run_id", "encoder", "encoder_size", "weights", "seed", "strategy", "strategy_params", "dataset",
            "dataset_params")
SAME_ENCODER = ("encoder", "encoder_size", "weights", "seed")  # seed: random weights differ by seed
SHOWN = ("encoder", "encoder_size", "weights", "seed", "strategy")  # copied as <key>_a / <key>_b


def align(runs: Mapping[str, tuple[list[str], np.ndarray]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Rows of every run restricted to the image ids all runs share, in sorted id order.
    Raises if a run repeats an id or if no id is shared."""
    shared: set[str] | None = None
    for name, (ids, matrix) in runs.items():
        if len(set(ids)) != len(ids):
            raise ValueError(f"run {name!r} has repeated image ids")
        if len(ids) != len(matrix):
            raise ValueError(f"run {name!r}: {len(ids)} ids for {len(matrix)} embedding rows")
        shared = set(ids) if shared is None else shared & set(ids)
    common = sorted(shared or ())
    if not common:
        raise ValueError(f"runs {sorted(runs)} share no image id; compare runs over the same images")
    aligned = {}
    for name, (ids, matrix) in runs.items():
        pos = {i: n for n, i in enumerate(ids)}
        aligned[name] = np.asarray(matrix, dtype=np.float64)[[pos[i] for i in common]]
    return common, aligned


def compare_embeddings(
    runs: Mapping[str, tuple[list[str], np.ndarray]], meta: Mapping[str, Mapping[str, Any]] | None = None,
    k: int = MUTUAL_KNN_K,
) -> pd.DataFrame:
    """One row per pair of runs (a, b): `n_images` shared, `linear_cka`, `mutual_knn` (with
    `mutual_knn_k` = min(k, n - 1)) and, when a and b are the same encoder (name, size, weights
    and seed in `meta`: two random initialisations are not one encoder), `stability_mean` /
    `_p05` / `_min` of the per-image cosine (else NaN). `comparison` says cross-strategy,
    cross-encoder or same-config. `meta` values of SHOWN keys are copied as `<key>_a/_b`."""
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least 2 runs; got {len(runs)}")
    meta = meta or {}
    ids, aligned = align(runs)
    n = len(ids)
    rows = []
    for a, b in itertools.combinations(sorted(runs), 2):
        ma, mb = dict(meta.get(a, {})), dict(meta.get(b, {}))
        row: dict[str, Any] = {"run_a": a, "run_b": b}
        if "dataset" in ma:
            row["dataset"] = ma["dataset"]
        row.update({f"{key}_a": ma[key] for key in SHOWN if key in ma})
        row.update({f"{key}_b": mb[key] for key in SHOWN if key in mb})
        same_encoder = ma.get("encoder") is not None and all(ma.get(key) == mb.get(key) for key in SAME_ENCODER)
        cross_strategy = same_encoder and ma.get("strategy_params", ma.get("strategy")) != mb.get(
            "strategy_params", mb.get("strategy"))
        row["comparison"] = "cross-strategy" if cross_strategy else ("same-config" if same_encoder else "cross-encoder")
        row["n_images"] = n
        x, y = aligned[a], aligned[b]
        row["linear_cka"] = linear_cka(x, y) if n >= 2 else float("nan")
        kk = min(k, n - 1)
        row["mutual_knn"] = mutual_knn(x, y, k=kk) if kk >= 1 else float("nan")
        row["mutual_knn_k"] = kk
        if same_encoder and x.shape == y.shape:
            cos = stability_per_image(x, y)
            row.update(stability_mean=float(cos.mean()), stability_p05=float(np.percentile(cos, 5)),
                       stability_min=float(cos.min()))
        else:
            row.update(stability_mean=float("nan"), stability_p05=float("nan"), stability_min=float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def _run_meta(run_dir: Path) -> dict[str, Any]:
    records = RunStore(run_dir).records()
    run = records[records["kind"] == "run"]
    if run.empty:
        raise ValueError(f"{run_dir} has no run row")
    row = run.iloc[0]
    return {key: row[key] for key in RUN_KEYS if key in row.index}


def _load_runs(
    runs_info: Iterable[tuple[Path, dict[str, Any]]],
) -> tuple[dict[str, tuple[list[str], np.ndarray]], dict[str, dict[str, Any]]]:
    """Embeddings and run columns of finished runs (folder, its `_run_meta`), keyed by run id."""
    runs, meta = {}, {}
    for run_dir, info in runs_info:
        name = str(info.get("run_id", run_dir.name))
        if name in runs:  # two folders claiming one run id (copied by hand): keep both, by folder
            name = f"{name} ({run_dir})"
        runs[name] = RunStore(run_dir).embeddings()
        meta[name] = {key: value for key, value in info.items() if key != "run_id"}
    return runs, meta


def compare_runs(run_dirs: Iterable[str | Path], k: int = MUTUAL_KNN_K) -> pd.DataFrame:
    """Load `embeddings.npz` of finished runs and compare them pairwise (see
    `compare_embeddings`); runs are keyed by run id."""
    runs, meta = _load_runs((run_dir, _run_meta(run_dir)) for run_dir in map(Path, run_dirs))
    return compare_embeddings(runs, meta, k=k)


def compare_groups(run_dirs: Iterable[str | Path], k: int = MUTUAL_KNN_K) -> pd.DataFrame:
    """`compare_embeddings` within each group of runs over the same dataset (name and
    parameters) that saved embeddings; groups of fewer than two distinct run folders, or whose
    runs share no image, are left out. Empty frame when nothing can be compared."""
    groups: dict[tuple[Any, Any], list[tuple[Path, dict[str, Any]]]] = {}
    for run_dir in dict.fromkeys(map(Path, run_dirs)):  # a folder listed twice is one run
        if not (run_dir / "embeddings.npz").exists():
            continue
        info = _run_meta(run_dir)
        groups.setdefault((info.get("dataset"), info.get("dataset_params")), []).append((run_dir, info))
    frames = []
    for members in groups.values():
        if len(members) < 2:  # one run: no pair to compare
            continue
        runs, meta = _load_runs(members)
        if not set.intersection(*(set(ids) for ids, _ in runs.values())):  # disjoint images: nothing to align
            continue
        frames.append(compare_embeddings(runs, meta, k=k))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
