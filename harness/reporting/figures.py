"""The paper figures, each a function of an aggregated table (never of runs or models).

Every function takes a DataFrame and an output folder and returns the files it wrote, or an
empty list (after saying why) when the table lacks what it needs.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.benchmarks.mme.subtasks import SUBTASKS
from harness.reporting import style

METRIC_PREFIX = "metric:"
QUALITY_PREFERENCE = ("knn", "probe", "retrieval", "recall")
ASPECT_TICKS = [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8]
PANELS_PER_ROW = 3
ASPECT_LABELS = ["1:8", "1:4", "1:2", "1:1", "2:1", "4:1", "8:1"]


# metric name (as in `metric:<name>` columns) -> what a paper calls it; kNN names its k
METRIC_NAMES = {
    "linear_probe_accuracy": "Linear probe acc.", "effective_rank": "Effective rank", "rankme": "RankMe",
    "uniformity": "Uniformity", "alignment": "Alignment", "mme_perception": "MME perception",
    "mme_cognition": "MME cognition", "mme_total": "MME total", "yes_no_score": "Yes/no score",
    "pairwise_accuracy": "Pairwise acc.", "retrieval_recall": "Retrieval recall",
}


def metric_header(column: str) -> str:
    """A human name for a metric column: `metric:knn_accuracy_k10` -> `kNN@10 acc.`,
    `metric:mme_cognition` -> `MME cognition`; an unknown name with spaces."""
    name = column.removeprefix(METRIC_PREFIX)
    if (knn := re.fullmatch(r"knn_accuracy_k(\d+)", name)) is not None:
        return f"kNN@{knn.group(1)} acc."
    return METRIC_NAMES.get(name, name.replace("_", " "))


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table.columns else table


def _lacks(table: pd.DataFrame, columns: tuple[str, ...], figure: str) -> bool:
    """True (after saying which) when the table misses a column the figure needs."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        print(f"skip {figure}: the table has no {', '.join(missing)} column")
    return bool(missing)


# What can tell two configurations of a study apart, in label order (strategy `pp_*` and
# reduction `rd_*` parameters and `dataset.*` keys added).
LABEL_FIELDS = ("encoder", "encoder_size", "weights", "connector", "attn", "pool", "strategy", "reduce", "dataset",
                "vlm", "vlm_weights", "vlm_size", "vlm_protocol", "vlm_max_new_tokens", "device", "dtype", "seed",
                "batch_views")
PARAM_PREFIXES = ("pp_", "rd_")  # one strategy's or one reduction's parameters: a sweep of them is one line
ALWAYS_SHOWN = ("encoder", "strategy")


def _value(value: object) -> str:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return style.number_text(value.item() if isinstance(value, np.generic) else value)
    return str(value)


def natural_key(text: str) -> list[object]:
    """Sort key that orders the numbers inside labels by value: max_tiles=2 before max_tiles=12,
    1,003,520 after 200,704."""
    parts = re.split(r"(\d[\d,]*(?:\.\d+)?)", str(text))
    return [(0, float(p.replace(",", ""))) if i % 2 else (1, p) for i, p in enumerate(parts)]


def label_fields(table: pd.DataFrame) -> pd.DataFrame:
    """The identity fields of each row: LABEL_FIELDS, every `pp_<param>`, and each key of
    `dataset_params` as `dataset.<key>`, as text (missing as `-`)."""
    cols = [c for c in LABEL_FIELDS if c in table.columns]
    cols += sorted(c for c in table.columns if c.startswith(PARAM_PREFIXES))
    fields = table[cols].copy()
    if "strategy_params" in table.columns:  # list-valued parameters (pinpoint sets) have no pp_ column
        params = [json.loads(p) if isinstance(p, str) and p else {} for p in table["strategy_params"]]
        listed = sorted({k for p in params for k, v in p.items() if isinstance(v, list) and k not in ("mean", "std")})
        for key in listed:
            fields[f"pp_{key}"] = [f"{len(p[key])} entr{'y' if len(p[key]) == 1 else 'ies'}"
                                   if isinstance(p.get(key), list) else None for p in params]
    if "dataset_params" in table.columns:
        params = [json.loads(p) if isinstance(p, str) and p else {} for p in table["dataset_params"]]
        for key in sorted({k for p in params for k in p}):
            fields[f"dataset.{key}"] = [p.get(key) for p in params]
    return fields.apply(lambda col: col.map(lambda v: "-" if v is None or (isinstance(v, float) and v != v)
                                             else _value(v)))


def varying_fields(table: pd.DataFrame) -> list[str]:
    """The identity fields that take more than one value in the table (always encoder, strategy)."""
    fields = label_fields(table)
    return [c for c in fields.columns if c in ALWAYS_SHOWN or fields[c].nunique() > 1]


def telling_fields(table: pd.DataFrame, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The varying fields, besides encoder and strategy, that tell apart rows the fields before
    them do not (see `config_labels`)."""
    fields = label_fields(table)
    shown: list[str] = []
    key = fields[[c for c in ALWAYS_SHOWN if c in fields]].astype(str).agg("|".join, axis=1)
    for col in varying_fields(table):
        if col in ALWAYS_SHOWN or col in leave_out:
            continue
        if fields[col].groupby(key).nunique().max() > 1:  # splits rows that read alike so far
            shown.append(col)
            key = key + "|" + fields[col]
    return shown


def config_labels(table: pd.DataFrame, leave_out: tuple[str, ...] = (), unique: bool = True) -> pd.Series:
    """One label per row: `encoder / strategy (field=value, ...)` naming the fields that vary
    within the table (dataset parameters included), less `leave_out`. A field is named when it
    tells apart rows that the fields before it (LABEL_FIELDS order, then strategy parameters,
    then dataset parameters) do not, so one that follows from them (an encoder's tile size)
    stays out. Two configurations (config hashes) that still read the same get their hash
    appended (`unique`), so a label is never shared."""
    fields = label_fields(table)
    shown = telling_fields(table, leave_out)

    def name(c: str) -> str:
        return c.removeprefix("pp_").removeprefix("rd_")

    def label(row: pd.Series) -> str:
        head = " / ".join(row[c] for c in ALWAYS_SHOWN if c in row.index)
        parts = [f"{name(c)}={row[c]}" for c in shown if row[c] != "-"]  # `-`: not a parameter of this row
        return head + (f" ({', '.join(parts)})" if parts else "")

    labels = pd.Series([label(row) for _, row in fields.iterrows()], index=table.index, dtype=object)
    if unique and "config_hash" in table.columns:
        hashes = table["config_hash"].astype(str)
        shared = labels.groupby(labels).transform(lambda s: hashes[s.index].nunique() > 1).astype(bool)
        if shared.any():
            distinct = sorted(set(hashes[shared]))
            width = next(n for n in range(6, 65) if len({h[:n] for h in distinct}) == len(distinct))
            labels[shared] = labels[shared] + " #" + hashes[shared].str[:width]
    return labels


def _run_labels(table: pd.DataFrame) -> dict[str, str]:
    """run_id -> its configuration's label (`config_labels`)."""
    if "run_id" not in table:
        return {}
    return dict(zip(table["run_id"], config_labels(table), strict=True))


def _series(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """Lines of a figure: rows that differ only in one strategy's or one reduction's parameters
    (a budget sweep) form one series, named by everything else that varies; returns (series
    label, rows, the parameters that vary within it, for labelling its points), in natural
    order (max_tiles 2 before 12)."""
    params = [c for c in table.columns if c.startswith(PARAM_PREFIXES)]
    series = config_labels(table, leave_out=tuple(params), unique=False)
    fields = label_fields(table)
    single = config_labels(table)
    out = []
    for name in sorted(series.unique(), key=natural_key):
        rows = table[series == name]
        if fields.loc[rows.index, params].assign(_all=0).duplicated().any():  # differ in something unshown
            out += [(single[i], rows.loc[[i]], []) for i in rows.index]
            continue
        within = [c for c in params if fields.loc[rows.index, c].nunique() > 1]
        if within:  # the legend says what the numbers next to its points are
            name += f" [points: {', '.join(c.removeprefix('pp_').removeprefix('rd_') for c in within)}]"
        out.append((name, rows, within))
    return out


@dataclass(frozen=True)
class LineStyle:
    color: tuple[float, ...]
    marker: str
    linestyle: str


def series_styles(series: list[tuple[str, pd.DataFrame, list[str]]]) -> dict[str, LineStyle]:
    """A look of its own for every series: the encoder's colour (one per encoder, as in every
    figure), and within an encoder a marker (then a dash pattern) per series, so no two series
    of a figure look alike."""
    encoders = sorted({str(rows["encoder"].iloc[0]) for _, rows, _ in series})
    seen: dict[str, int] = {}
    out = {}
    dashes = ("-", "--", ":", "-.")
    for name, rows, _ in series:
        encoder = str(rows["encoder"].iloc[0])
        k = seen.get(encoder, 0)
        seen[encoder] = k + 1
        out[name] = LineStyle(style.color_of(encoder, encoders), style.MARKERS[k % len(style.MARKERS)],
                              dashes[(k // len(style.MARKERS)) % len(dashes)])
    return out


def each_series(table: pd.DataFrame, x: str) -> Iterator[tuple[str, pd.DataFrame, list[str], LineStyle]]:
    """The series of a figure (`_series`) in order, each with its rows sorted by `x` and its look."""
    series = _series(table)
    looks = series_styles(series)
    for name, rows, params in series:
        yield name, rows.sort_values(x), params, looks[name]


def point_labels(ax: plt.Axes, x: pd.Series, y: pd.Series, rows: pd.DataFrame, params: list[str]) -> None:
    """Write the varying parameters next to each point of a series."""
    if not params:
        return
    fields = label_fields(rows)
    for xi, yi, idx in zip(x, y, rows.index, strict=True):
        text = ", ".join(f"{c.removeprefix('pp_').removeprefix('rd_')}={fields.loc[idx, c]}" if len(params) > 1
                         else fields.loc[idx, c] for c in params)
        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=5, gid=style.POINT_LABEL)


def tokens_vs_aspect(atlas: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Visual tokens against aspect ratio per strategy (median over sizes, min-max band), one
    panel per encoder, at most three panels a row (so ticks and titles stay readable)."""
    encoders = sorted(atlas["encoder"].unique())
    ncols = min(PANELS_PER_ROW, len(encoders))
    nrows = -(-len(encoders) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.PAGE_WIDTH_IN, 2.3 * nrows), sharey=True, squeeze=False)
    variants = sorted({(s, p) for s, p in zip(atlas["strategy"], atlas["strategy_params"], strict=True)})
    names = [s + (f" ({', '.join(f'{k}={_value(v)}' for k, v in json.loads(p).items())})" if json.loads(p) else "")
             for s, p in variants]
    dashes = ("-", "--", ":")
    look = {n: (style.COLORS[k % len(style.COLORS)], dashes[(k // len(style.COLORS)) % len(dashes)])
            for k, n in enumerate(names)}
    for k, ax in enumerate(axes.flat):
        if k >= len(encoders):
            ax.set_visible(False)
            continue
        encoder = encoders[k]
        sub = atlas[atlas["encoder"] == encoder]
        for (strategy, params), name in zip(variants, names, strict=True):
            grp = sub[(sub["strategy"] == strategy) & (sub["strategy_params"] == params)].sort_values("aspect_ratio")
            if grp.empty:
                continue
            color, dash = look[name]
            ax.plot(grp["aspect_ratio"], grp["tokens_median"], color=color, linestyle=dash, label=name)
            ax.fill_between(grp["aspect_ratio"], grp["tokens_min"], grp["tokens_max"], color=color, alpha=0.15,
                            linewidth=0)
        ax.set_xscale("log")
        ax.set_xticks(ASPECT_TICKS, ASPECT_LABELS)
        ax.minorticks_off()
        ax.set_title(encoder.replace("@", " + "), fontsize=plt.rcParams["axes.labelsize"])
        if k % ncols == 0:
            ax.set_ylabel("visual tokens per image")
        if k + ncols >= len(encoders):  # the lowest panel of its column
            ax.set_xlabel("aspect ratio (w / h)")
    # one legend for every strategy variant drawn in any panel (panels hold different subsets)
    drawn = {line.get_label() for ax in axes.flat for line in ax.get_lines()}
    handles = [Line2D([], [], color=look[n][0], linestyle=look[n][1], label=n) for n in names if n in drawn]
    style.legend_below(fig, handles, [h.get_label() for h in handles])
    return style.save(fig, out_dir, "tokens_vs_aspect")


def quality_column(table: pd.DataFrame) -> str | None:
    """The quality metric to plot: a kNN accuracy if present, else a probe, else any metric."""
    metrics = sorted(c for c in table.columns if c.startswith(METRIC_PREFIX) and table[c].notna().any())
    for key in QUALITY_PREFERENCE:
        for col in metrics:
            if key in col:
                return col
    return metrics[0] if metrics else None


def pareto_front(tokens: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (fewer or equal tokens and higher quality),
    sorted by tokens."""
    order = np.lexsort((-quality, tokens))
    front, best = [], -np.inf
    for i in order:
        if quality[i] > best:
            front.append(i)
            best = quality[i]
    return np.asarray(front, dtype=int)


def quality_vs_tokens(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Quality against visual tokens: every configuration (series) its own look, the encoder's
    colour, and each encoder's Pareto front as a thin line."""
    col = quality_column(table)
    if col is None:
        print("skip quality_vs_tokens: the table has no metric:* column (no kind=metric rows in its runs)")
        return []
    if _lacks(table, ("encoder", "strategy", "visual_tokens_mean"), "quality_vs_tokens"):
        return []
    ok = _ok(table).dropna(subset=[col, "visual_tokens_mean"])
    if ok.empty:
        print("skip quality_vs_tokens: no finished configuration with that metric")
        return []
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH_IN, 2.6))
    for name, grp, params, look in each_series(ok, "visual_tokens_mean"):
        ax.scatter(grp["visual_tokens_mean"], grp[col], color=look.color, marker=look.marker, label=name)
        point_labels(ax, grp["visual_tokens_mean"], grp[col], grp, params)
    encoders = sorted(ok["encoder"].unique())
    for encoder in encoders:
        grp = ok[ok["encoder"] == encoder]
        front = pareto_front(grp["visual_tokens_mean"].to_numpy(float), grp[col].to_numpy(float))
        if len(front) > 1:
            ax.plot(grp["visual_tokens_mean"].to_numpy()[front], grp[col].to_numpy()[front],
                    color=style.color_of(encoder, encoders), linewidth=0.7, label=f"{encoder}: Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("visual tokens per image (mean)")
    ax.set_ylabel(metric_header(col))
    style.legend_below(fig)
    return style.save(fig, out_dir, "quality_vs_tokens")


def latency_vs_tokens(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Encode latency (p50 per image; bars p25-p75 when recorded) against visual tokens per
    image. One line per series (configurations differing only in strategy parameters, each
    point labelled with them); runs timed under load drawn hollow."""
    if _lacks(table, ("encoder", "strategy", "visual_tokens_mean", "encode_p50_ms"), "latency_vs_tokens"):
        return []
    ok = _ok(table).dropna(subset=["visual_tokens_mean", "encode_p50_ms"])
    if ok.empty:
        print("skip latency_vs_tokens: no finished configuration")
        return []
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH_IN, 2.6))
    for name, grp, params, look in each_series(ok, "visual_tokens_mean"):
        color, marker = look.color, look.marker
        x, y = grp["visual_tokens_mean"], grp["encode_p50_ms"]
        ax.plot(x, y, color=color, marker=marker, linestyle=look.linestyle, label=name)
        if has_spread(grp):
            err = np.vstack([(y - grp["encode_p25_ms"]).clip(lower=0), (grp["encode_p75_ms"] - y).clip(lower=0)])
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
        if "timed_under_load" in grp.columns:
            loaded = grp["timed_under_load"].fillna(False).astype(bool)
            ax.scatter(x[loaded], y[loaded], facecolors="white", edgecolors=color, marker=marker, zorder=3)
        point_labels(ax, x, y, grp, params)
    ax.set_xlabel("visual tokens per image (mean)")
    ax.set_ylabel("encode p50 (ms / image)" + (", bars p25-p75" if has_spread(ok) else ""))
    style.legend_below(fig)
    return style.save(fig, out_dir, "latency_vs_tokens")


def has_spread(table: pd.DataFrame) -> bool:
    """Whether a latency spread was measured: more than one batch timed (`encode_p25_ms` and
    `encode_p75_ms` differ somewhere); one timed batch has no spread to draw."""
    if not {"encode_p25_ms", "encode_p75_ms"} <= set(table.columns):
        return False
    spread = (table["encode_p75_ms"] - table["encode_p25_ms"]).abs()
    return bool((spread > 0).any())


def memory_vs_views(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Peak memory against crops per image: device memory on CUDA runs, else resident memory
    (sampled, approximate). One line per series, points labelled as in `latency_vs_tokens`."""
    if _lacks(table, ("encoder", "strategy", "views_total", "n_images", "peak_rss_mb"), "memory_vs_views"):
        return []
    ok = _ok(table).copy()
    use_device = "peak_allocated_mb" in ok.columns and ok["peak_allocated_mb"].notna().any()
    col = "peak_allocated_mb" if use_device else "peak_rss_mb"
    ok["views_per_image"] = ok["views_total"] / ok["n_ok" if "n_ok" in ok.columns else "n_images"]
    ok = ok.dropna(subset=[col, "views_per_image"])
    if ok.empty:
        print("skip memory_vs_views: no finished configuration with memory")
        return []
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH_IN, 2.6))
    for name, grp, params, look in each_series(ok, "views_per_image"):
        ax.plot(grp["views_per_image"], grp[col], color=look.color, marker=look.marker, linestyle=look.linestyle,
                label=name)
        point_labels(ax, grp["views_per_image"], grp[col], grp, params)
    ax.set_xlabel("crops per image (mean)")
    ax.set_ylabel("peak device memory (MiB)" if use_device else "peak resident memory (MiB, approx.)")
    style.legend_below(fig)
    return style.save(fig, out_dir, "memory_vs_views")


def cka_heatmap(compare: pd.DataFrame, table: pd.DataFrame, out_dir: Path, metric: str = "linear_cka") -> list[Path]:
    """Heatmap of a pairwise similarity between configurations, labelled encoder / strategy from
    the study table. `compare` is what `harness.metrics.compare` writes: one row per pair,
    run_a, run_b and a column per measure (linear_cka, mutual_knn, stability_*)."""
    if metric not in compare.columns:
        print(f"skip cka_heatmap: the compare table has no {metric} column")
        return []
    sub = compare[["run_a", "run_b", metric]].rename(columns={metric: "value"}).dropna()
    if sub.empty:
        print(f"skip cka_heatmap: no {metric} rows in the compare table")
        return []
    labels = _run_labels(table)
    runs = sorted(set(sub["run_a"]) | set(sub["run_b"]), key=lambda r: labels.get(r, r))
    index = {r: i for i, r in enumerate(runs)}
    matrix = np.eye(len(runs))
    for a, b, v in zip(sub["run_a"], sub["run_b"], sub["value"], strict=True):
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = v
    longest = max(len(labels.get(r, r)) for r in runs)
    size = max(2.0, 0.35 * len(runs))  # the matrix; the labels get room of their own
    margin = 0.045 * longest  # inches of tick labels, ~0.045 in per character at 6-7 pt
    fig, ax = plt.subplots(figsize=(size + margin + 1.2, size + margin * 0.8))
    im = ax.imshow(matrix, vmin=0, vmax=1)
    names = [labels.get(r, r) for r in runs]
    ax.set_xticks(range(len(runs)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(runs)), names)
    ax.grid(False)
    for i in range(len(runs)):
        for j in range(len(runs)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, label=metric)
    fig.tight_layout()
    return style.save(fig, out_dir, f"{metric}_heatmap")


def mme_bars(mme: pd.DataFrame, out_dir: Path, table: pd.DataFrame | None = None) -> list[Path]:
    """MME score per subtask (official order), one bar per run, labelled by its configuration
    (`config_labels` of the study table when given, else of the MME rows themselves)."""
    if mme.empty:
        print("skip mme_bars: empty MME table")
        return []
    mme = mme.copy()
    labels = _run_labels(table) if table is not None and "run_id" in table else {}
    if "run_id" in mme and not set(mme["run_id"]) <= set(labels):
        runs = mme.drop_duplicates("run_id")
        labels = dict(zip(runs["run_id"], config_labels(runs), strict=True))
    key = mme["run_id"] if "run_id" in mme else mme["encoder"]
    mme["config"] = key.map(lambda r: labels.get(r, str(r)))
    pivot = mme.pivot_table(index="category", columns="config", values="score", aggfunc="first", sort=True)
    order = [c for c in SUBTASKS if c in pivot.index] + sorted(c for c in pivot.index if c not in SUBTASKS)
    pivot = pivot.loc[order]
    configs = list(pivot.columns)
    width = 0.8 / len(configs)
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH_IN, 2.6))
    x = np.arange(len(pivot.index))
    for k, config in enumerate(configs):
        ax.bar(x + (k - (len(configs) - 1) / 2) * width, pivot[config], width, label=config,
               color=style.color_of(config, configs))
    ax.set_xticks(x, pivot.index, rotation=45, ha="right")
    ax.set_ylabel("MME score (max 200)")
    ax.set_ylim(0, 200)
    style.legend_below(fig)
    return style.save(fig, out_dir, "mme_subtasks")


@dataclass
class StudyTables:
    """A study's aggregated tables (`main` always; the others empty when absent)."""

    main: pd.DataFrame
    mme: pd.DataFrame
    compare: pd.DataFrame
    images: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per measured image


def read_tables(tables_dir: Path, study: str) -> StudyTables | None:
    def read(stem: str) -> pd.DataFrame:
        path = tables_dir / f"{stem}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    main = read(study)
    if main.empty:
        return None
    return StudyTables(main, read(f"{study}_mme"), read(f"{study}_compare"), read(f"{study}_images"))


def draw_any_study(tables: StudyTables, out: Path) -> list[Path]:
    """The figures every study gets when it has no `experiments/<study>/figures.py` of its own
    (e.g. single runs under the default study): latency and quality against tokens, memory
    against views, and the CKA heatmap / MME bars when those tables exist."""
    paths = [*latency_vs_tokens(tables.main, out), *memory_vs_views(tables.main, out),
             *quality_vs_tokens(tables.main, out)]
    if not tables.compare.empty:
        paths += cka_heatmap(tables.compare, tables.main, out)
    if not tables.mme.empty:
        paths += mme_bars(tables.mme, out, tables.main)
    return paths


def study_main(study: str, draw: Callable[[StudyTables, Path], list[Path]], argv: list[str] | None = None) -> int:
    """Entry point of an `experiments/<study>/figures.py`: read the tables, draw, list the files."""
    parser = argparse.ArgumentParser(description=f"figures of the {study} study from its aggregated tables")
    parser.add_argument("--tables", default="results/tables", help="folder with <study>.parquet")
    parser.add_argument("--out", default="results/figures", help="figures go to <out>/<study>/")
    args = parser.parse_args(argv)
    tables = read_tables(Path(args.tables), study)
    if tables is None:
        print(f"{study}: no table {Path(args.tables) / (study + '.parquet')} (run the study, then make tables)")
        return 0
    style.apply()
    paths = draw(tables, Path(args.out) / study)
    print(f"{study}: " + (", ".join(str(p) for p in paths) if paths else "no figure"))
    return 0
