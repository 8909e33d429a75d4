"""`python -m harness.report` / `harness-report`: tables and figures from finished runs.

Reads run folders only (never runs a model). Tables (`make tables`): for every study, one
tidy row per configuration (config hash): the newest complete run, or, when a configuration
never completed, its newest failure (kept, `status=error:<kind>`, with the message). Written
as Parquet, CSV, Markdown and LaTeX (booktabs) under `<out>/tables/<study>.*`, plus
`<study>_mme.*` (per-subtask MME scores), `<study>_compare.*` (pairwise CKA and friends) and
`<study>_images.*` (one row per measured image: size, views, tokens, latency, batch peaks)
when the runs have them. Figures (`make figures`): every `experiments/*/figures.py`, each
reading only `<out>/tables/`, writing PDF + PNG under `<out>/figures/<study>/`.

Run-level quality metrics are records `kind=metric` with columns `metric` and `value` (and
`category` for per-subtask MME scores); each becomes a `metric:<name>` column of the table.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import pandas as pd

from harness import style
from harness.metrics.compare import compare_groups
from harness.metrics.run_quality import metric_columns, quality_table
from harness.report_figures import draw_any_study, read_tables
from harness.store import find_failed, find_runs, load_records

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
IDENTITY_COLUMNS = [
    "study", "config_hash", "status", "encoder", "encoder_size", "weights", "strategy", "strategy_params",
    "dataset", "dataset_params", "device", "dtype", "seed", "batch_views",
]
MEASURE_COLUMNS = [
    "n_images", "n_ok", "n_errors", "visual_tokens_mean", "views_total", "preprocess_p50_ms", "encode_p50_ms",
    "encode_p95_ms", "encode_images_per_s", "encode_views_per_s", "peak_rss_mb", "peak_allocated_mb",
    "peak_reserved_mb", "weights_mb",
]
NOT_STUDY_TABLES = {"summary", "quality", "compare", "token_atlas"}  # tables across studies, or not of runs
TRAILING_COLUMNS = ["attempts", "message", "run_id", "run_dir"]
SUMMARY_COLUMNS = [
    "study", "encoder", "encoder_size", "weights", "strategy", "strategy_params", "dataset", "device", "dtype",
    "n_images", "n_errors", "visual_tokens_mean", "views_total", "preprocess_p50_ms", "encode_p50_ms",
    "encode_p95_ms", "encode_images_per_s", "peak_rss_mb", "peak_allocated_mb", "weights_mb", "run_id", "run_dir",
]
TERMINAL_COLUMNS = ["study", "encoder", "strategy", "status", "n_images", "n_errors", "visual_tokens_mean",
                    "encode_p50_ms", "encode_images_per_s"]


def summary_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per run, from the run-level records."""
    runs = records[records["kind"] == "run"]
    cols = [c for c in SUMMARY_COLUMNS if c in runs.columns]
    return runs[cols].sort_values(["study", "encoder", "strategy", "run_id"]).reset_index(drop=True)


def _metric_columns(records: pd.DataFrame) -> pd.DataFrame:
    """Measured (status ok) kind=metric rows without a category -> one `metric:<name>` column
    per metric (kNN suffixed `_k<k>`, as in the `quality` table), indexed by run_id."""
    if not {"metric", "value"} <= set(records.columns):
        return pd.DataFrame(index=pd.Index([], name="run_id"))
    rows = records[(records["kind"] == "metric") & (records["status"] == "ok") & records["metric"].notna()].copy()
    if "category" in rows.columns:
        rows = rows[rows["category"].isna()]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="run_id"))
    rows["column"] = [f"metric:{c}" for c in metric_columns(rows)]
    wide = rows.pivot_table(index="run_id", columns="column", values="value", aggfunc="last")
    wide.columns.name = None
    return wide


def study_tables(records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per study: one row per configuration (config hash), failures kept and marked."""
    if records.empty:
        return {}
    runs = records[records["kind"] == "run"].copy()
    # records written without a config hash (by hand, or by other tools): each run is its own configuration
    runs["config_hash"] = runs.get("config_hash", pd.Series(index=runs.index, dtype=object)).fillna(runs["run_id"])
    runs["study"] = runs.get("study", pd.Series(index=runs.index, dtype=object)).fillna("default")
    runs["_complete"] = runs["run_complete"] if "run_complete" in runs else True
    attempts = runs.groupby(["study", "config_hash"]).size().rename("attempts")
    # newest complete run per configuration, else its newest failure
    runs = runs.sort_values(["_complete", "run_id"]).groupby(["study", "config_hash"], sort=False).tail(1)
    runs = runs.join(attempts, on=["study", "config_hash"])
    runs = runs.join(_metric_columns(records), on="run_id")
    out = {}
    for study, grp in runs.groupby("study", sort=True):
        pp_cols = sorted(c for c in grp.columns if c.startswith("pp_") and grp[c].notna().any())
        metric_cols = sorted(c for c in grp.columns if c.startswith("metric:") and grp[c].notna().any())
        cols = [c for c in IDENTITY_COLUMNS + pp_cols + MEASURE_COLUMNS + metric_cols + TRAILING_COLUMNS
                if c in grp.columns and (grp[c].notna().any() or c in ("status", "message"))]
        sort = [c for c in ["encoder", "strategy", *pp_cols, "seed", "config_hash"] if c in grp.columns]
        out[str(study)] = grp[cols].sort_values(sort, na_position="first").reset_index(drop=True)
    return out


IMAGE_COLUMNS = ["width", "height", "view_width", "view_height", "executed_views", "visual_tokens", "preprocess_ms",
                 "encode_ms", "total_ms", "batch_images", "batch_peak_allocated_mb", "warmup"]


def image_table(records: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The measured images (kind=image, status ok) of the table's runs, one row each, with the
    run's encoder, strategy and parameters: cost against image size needs per-image rows."""
    if "run_id" not in table or "kind" not in records:
        return pd.DataFrame()
    rows = records[(records["kind"] == "image") & (records["status"] == "ok") & records["run_id"].isin(table["run_id"])]
    cols = [c for c in IMAGE_COLUMNS if c in rows.columns]
    if rows.empty or "visual_tokens" not in cols:
        return pd.DataFrame()
    run_cols = [c for c in table.columns if c in ("run_id", "config_hash", "encoder", "encoder_size", "connector",
                                                  "strategy", "device", "dtype") or c.startswith("pp_")]
    return rows[["run_id", "image_id", *cols]].merge(table[run_cols], on="run_id").reset_index(drop=True)


def mme_subtask_rows(records: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per-subtask MME scores (kind=metric rows with a category) of the table's runs."""
    need = {"metric", "value", "category"}
    if not need <= set(records.columns) or "run_id" not in table:
        return pd.DataFrame()
    is_metric = (records["kind"] == "metric") & records["category"].notna()
    rows = records[is_metric & records["run_id"].isin(table["run_id"])]
    rows = rows[rows["metric"].astype(str).str.contains("score")]
    cols = [c for c in ("study", "encoder", "strategy", "strategy_params", "run_id", "category", "metric") if c in rows]
    return rows[cols].assign(score=rows["value"]).sort_values(cols).reset_index(drop=True)


def compare_table(table: pd.DataFrame) -> pd.DataFrame:
    """Pairwise comparisons of a study's finished runs over the same images, one row per pair
    (run_a, run_b, comparison, linear_cka, mutual_knn, stability_*), from
    `harness.metrics.compare.compare_groups`; empty when fewer than two runs saved embeddings."""
    ok = table[table["status"] == "ok"] if "status" in table else table
    if len(ok) < 2 or "run_dir" not in ok:
        return pd.DataFrame()
    try:
        return compare_groups(list(ok["run_dir"]))
    except Exception as exc:  # noqa: BLE001 - the main table must not depend on an optional comparison
        print(f"warning: comparison failed, no compare table: {type(exc).__name__}: {exc}", file=sys.stderr)
        return pd.DataFrame()


LATEX_COLUMNS = ["encoder", "encoder_size", "weights", "strategy", "status", "category", "score", "n_images",
                 "visual_tokens_mean", "encode_p50_ms", "encode_images_per_s", "peak_allocated_mb", "peak_rss_mb"]


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs LaTeX table (pandas Styler, `hrules=True`) of the columns a paper shows:
    configuration, status, tokens, latency, memory, quality metrics; 4 significant digits."""
    pp = [c for c in table.columns if c.startswith("pp_") and c != "pp_tile_size"]
    metrics = [c for c in table.columns if c.startswith("metric:")]
    cols = [c for c in LATEX_COLUMNS[:4] + pp + LATEX_COLUMNS[4:] + metrics if c in table.columns]
    shown = table[cols]
    numeric = [c for c in cols if pd.api.types.is_float_dtype(shown[c])]
    styler = shown.style.hide(axis="index").format(escape="latex", na_rep="--")
    styler = styler.format("{:.4g}", subset=numeric, na_rep="--").format_index(escape="latex", axis=1)
    align = "".join("r" if pd.api.types.is_numeric_dtype(shown[c]) else "l" for c in cols)
    return styler.to_latex(hrules=True, column_format=align)


def write_tables(table: pd.DataFrame, out_dir: Path, stem: str, latex: bool = False) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.parquet", out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    table.to_parquet(paths[0], index=False)
    table.to_csv(paths[1], index=False)
    paths[2].write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    if latex:
        paths.append(out_dir / f"{stem}.tex")
        paths[-1].write_text(to_latex(table))
    return paths


def build_tables(run_roots: list[str], out: Path) -> dict[str, pd.DataFrame]:
    """Every study's tables under `<out>/tables/`; returns the study tables."""
    done, failed = find_runs(*run_roots), find_failed(*run_roots)
    records = load_records([*done, *failed])
    if records.empty:
        return {}
    tables = study_tables(records)
    for study, table in tables.items():
        write_tables(table, out / "tables", study, latex=True)
        mme = mme_subtask_rows(records, table)
        if not mme.empty:
            write_tables(mme, out / "tables", f"{study}_mme", latex=True)
        compare = compare_table(table)
        if not compare.empty:
            write_tables(compare, out / "tables", f"{study}_compare")
        images = image_table(records, table)
        if not images.empty:
            write_tables(images, out / "tables", f"{study}_images")
    finished = records[records["run_dir"].isin([str(d) for d in done])]
    write_tables(summary_table(finished), out / "tables", "summary")
    quality = quality_table(finished)  # every finished run's quality metrics, across studies
    if not quality.empty:
        write_tables(quality, out / "tables", "quality")
    compare = compare_groups(done)  # every pair of finished runs over the same images, across studies
    if not compare.empty:
        write_tables(compare, out / "tables", "compare")
    return tables


def figure_scripts() -> list[Path]:
    return sorted(EXPERIMENTS_DIR.glob("*/figures.py"))


def build_figures(out: Path) -> int:
    """Run every experiments/*/figures.py (in this process, as `__main__`) on `<out>/tables`;
    non-zero if one failed. One script failing does not stop the others."""
    status = 0
    scripts = [p for p in figure_scripts() if (out / "tables" / f"{p.parent.name}.parquet").exists()]
    waiting = sorted(p.parent.name for p in figure_scripts() if p not in scripts)
    if waiting:
        print(f"no tables yet (run the study, then make tables): {', '.join(waiting)}")
    for script in scripts:
        argv = sys.argv
        sys.argv = [str(script), "--tables", str(out / "tables"), "--out", str(out / "figures")]
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            status = max(status, exc.code if isinstance(exc.code, int) else 1)
        except Exception as exc:  # noqa: BLE001 - report it, build the other studies' figures
            print(f"error: {script}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
        finally:
            sys.argv = argv
    scripted = {script.parent.name for script in figure_scripts()}
    for path in sorted((out / "tables").glob("*.parquet")):
        study = path.stem
        if study in scripted or study in NOT_STUDY_TABLES or study.endswith(("_mme", "_compare", "_images")):
            continue
        tables = read_tables(out / "tables", study)
        if tables is None or "encoder" not in tables.main:
            continue
        style.apply()
        try:
            paths = draw_any_study(tables, out / "figures" / study)
            print(f"{study}: " + (", ".join(str(p) for p in paths) if paths else "no figure"))
        except Exception as exc:  # noqa: BLE001 - report it, build the other studies' figures
            print(f"error: figures of {study}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness-report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=["results/runs"], help="run folders or folders that hold them")
    parser.add_argument("--out", default="results", help="where tables/ and figures/ go (default: results)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--tables-only", action="store_true", help="build tables, not figures")
    only.add_argument("--figures-only", action="store_true", help="build figures from existing tables")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.figures_only:
        tables = build_tables(args.runs, out)
        if not tables:
            print(f"error: no finished or failed runs under {', '.join(args.runs)}", file=sys.stderr)
            return 2
        both = pd.concat(tables.values(), ignore_index=True)
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(both[[c for c in TERMINAL_COLUMNS if c in both]].to_string(index=False, float_format="%.4g"))
        print(f"\n{len(both)} configurations in {len(tables)} stud{'y' if len(tables) == 1 else 'ies'}. "
              f"Tables: {out / 'tables'}/"
              f"{{{','.join(tables)}}}.{{parquet,csv,md,tex}}")
    if args.tables_only:
        return 0
    status = build_figures(out)
    print(f"Figures: {out / 'figures'}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
