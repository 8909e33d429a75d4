"""`python -m harness.report` / `harness-report`: tables and figures from finished runs.

Reads run folders only (never runs a model). Tables (`make tables`): for every study, one
tidy row per configuration (config hash): the newest complete run, or, when a configuration
never completed, its newest failure (kept, `status=error:<kind>`, with the message). Written
as Parquet, CSV, Markdown and LaTeX (booktabs) under `<out>/tables/<study>.*`, plus
`<study>_mme.*` (per-subtask MME scores), `<study>_compare.*` (pairwise CKA and friends),
`<study>_images.*` (one row per measured image: size, views, tokens, latency, batch peaks)
and `<study>_benchmarks.*` (one row per arm, per benchmark its main score, visual tokens and
prefill; harness/reporting/benchmark_table.py) when the runs have them. Figures (`make figures`): every
`experiments/*/figures.py`, each reading only `<out>/tables/`, writing PDF + PNG under `<out>/figures/<study>/`.

Run-level quality metrics are records `kind=metric` with columns `metric` and `value` (and
`category` for per-subtask MME scores); each becomes a `metric:<name>` column of the table.
"""

from __future__ import annotations

import argparse
import errno
import os
import runpy
import sys
from pathlib import Path

import pandas as pd

from harness.folders import check_name, is_safe_name
from harness.metrics.compare import compare_groups
from harness.metrics.run_quality import metric_columns, quality_table
from harness.pipeline.store import find_failed, find_runs, load_readable
from harness.reporting import style
from harness.reporting.benchmark_table import benchmarks_table
from harness.reporting.figures import draw_any_study, read_tables
from harness.reporting.paper import benchmarks_paper_table, mme_paper_table, paper_table
from harness.reporting.style import number_text

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
IDENTITY_COLUMNS = [
    "study", "config_hash", "status", "encoder", "encoder_size", "weights", "connector", "attn", "pool", "strategy",
    "strategy_params", "reduce", "reduce_params", "dataset", "dataset_params", "device", "dtype", "seed", "batch_views",
    "vlm", "vlm_weights", "vlm_size", "vlm_protocol", "vlm_max_new_tokens",
]
MEASURE_COLUMNS = [
    "n_images", "n_ok", "n_errors", "visual_tokens_mean", "views_total", "preprocess_p50_ms", "encode_p5_ms",
    "encode_p25_ms", "encode_p50_ms", "encode_p75_ms", "encode_p95_ms", "reduce_p50_ms", "encode_images_per_s",
    "encode_views_per_s", "peak_rss_mb", "peak_allocated_mb", "peak_reserved_mb", "weights_mb", "timing_repeats",
    "load_start_load_1m", "load_end_load_1m", "load_start_other_harness", "load_end_other_harness", "timed_under_load",
    # with a VLM (harness.vlm): answering costs and whether every question was answered
    "n_questions", "n_question_errors", "answers_complete", "mme_complete", "prompt_tokens_mean", "new_tokens_mean",
    "prefill_p50_ms", "prefill_p95_ms", "decode_answer_p50_ms", "kv_cache_mb_max", "lm_weights_mb",
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
        pp_cols = sorted(c for c in grp.columns if c.startswith(("pp_", "rd_")) and grp[c].notna().any())
        metric_cols = sorted(c for c in grp.columns if c.startswith("metric:") and grp[c].notna().any())
        cols = [c for c in IDENTITY_COLUMNS + pp_cols + MEASURE_COLUMNS + metric_cols + TRAILING_COLUMNS
                if c in grp.columns and (grp[c].notna().any() or c in ("status", "message"))]
        sort = [c for c in ["encoder", "strategy", "reduce", *pp_cols, "seed", "config_hash"] if c in cols]
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


def to_latex(table: pd.DataFrame, study: str, mme_rows: pd.DataFrame | None = None) -> str:
    """The paper-ready LaTeX of a study table, or of its MME scores when `mme_rows` is given
    (`harness.reporting.paper`)."""
    if mme_rows is not None:
        return mme_paper_table(mme_rows, table, study)
    return paper_table(table, study)


def write_tables(table: pd.DataFrame, out_dir: Path, stem: str, latex: str | None = None) -> list[Path]:
    """`<stem>.parquet/.csv/.md` (and `.tex`), each written whole to a temporary name first and
    renamed into place only when all are written: a failed or interrupted report leaves the
    previous tables, never a mix or a truncated file."""
    check_name(stem, "table name")  # a name from records never leaves out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {
        "parquet": lambda p: table.to_parquet(p, index=False),
        "csv": lambda p: table.to_csv(p, index=False),
        "md": lambda p: p.write_text(markdown(table)),
    }
    if latex is not None:
        writers["tex"] = lambda p: p.write_text(latex)
    staged = []
    try:
        for ext, write in writers.items():
            part = out_dir / f".{stem}.{ext}.{os.getpid()}.part"
            staged.append((part, out_dir / f"{stem}.{ext}"))
            write(part)
    except BaseException:
        for part, _ in staged:
            part.unlink(missing_ok=True)
        raise
    for part, path in staged:
        os.replace(part, path)
    return [path for _, path in staged]


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown with numbers as a reader writes them (1,003,520; 0.1235), not in
    exponent notation."""
    shown = table.copy()
    for col in shown.columns:
        if pd.api.types.is_numeric_dtype(shown[col]) and not pd.api.types.is_bool_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else number_text(v))
    return shown.to_markdown(index=False, disable_numparse=True) + "\n"


def runs_home(root: str | Path) -> Path | None:
    """The folder named `runs` that holds `root` (or is it), if any: `results/runs/quickstart`
    -> `results/runs`."""
    root = Path(root).resolve()
    return next((p for p in (root, *root.parents) if p.name == "runs"), None)


def default_out(run_roots: list[str]) -> Path:
    """Where tables and figures go unless --out says: next to the runs (the folder holding the
    `runs` folder they are in, else the given folder itself). Runs in different places need --out."""
    outs = {(home.parent if (home := runs_home(r)) else Path(r).resolve()) for r in run_roots}
    if len(outs) != 1:
        raise ValueError(f"runs in different folders ({', '.join(sorted(map(str, outs)))}); pass --out")
    return outs.pop()


def build_tables(run_roots: list[str], out: Path) -> dict[str, pd.DataFrame]:
    """The tables of the studies under `run_roots` in `<out>/tables/`, and the cross-study
    tables (summary, quality, compare) rebuilt from every study of the runs folders they are in
    (so reporting one study never cuts the others out). Returns the study tables."""
    homes = [str(home) for r in run_roots if (home := runs_home(r)) is not None]
    given = {*find_runs(*run_roots), *find_failed(*run_roots)}
    everything = sorted({*given, *find_runs(*homes), *find_failed(*homes)})
    records, damaged = load_readable(everything)
    for run_dir, why in damaged.items():
        print(f"warning: skipped damaged run {run_dir}: {why}", file=sys.stderr)
    if records.empty or not (given - set(damaged)):
        return {}
    mine = records[records["run_dir"].isin([str(d) for d in given])]
    tables = study_tables(mine)
    for study in [s for s in tables if not is_safe_name(s)]:
        folders = ", ".join(mine.loc[mine["study"] == study, "run_dir"].unique())
        print(f"warning: skipped study {study!r} ({folders}): not a safe name", file=sys.stderr)
        del tables[study]
    for study, table in list(tables.items()):
        try:
            write_study_tables(study, table, mine, records, out / "tables")
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            print(f"warning: skipped study {study[:60]!r}: its table names are too long for the file system",
                  file=sys.stderr)
            del tables[study]
    finished = records[records["run_complete"]]
    done = sorted({Path(d) for d in finished["run_dir"]})
    write_tables(summary_table(finished), out / "tables", "summary")
    quality = quality_table(finished)  # every finished run's quality metrics, across studies
    if not quality.empty:
        write_tables(quality, out / "tables", "quality")
    compare = compare_groups(done)  # every pair of finished runs over the same images, across studies
    if not compare.empty:
        write_tables(compare, out / "tables", "compare")
    return tables


def write_study_tables(study: str, table: pd.DataFrame, mine: pd.DataFrame, records: pd.DataFrame,
                       folder: Path) -> None:
    """A study's table and, when its runs have them, its MME, compare, image and benchmarks
    (one row per arm, each benchmark's main score, tokens and prefill) tables."""
    write_tables(table, folder, study, latex=to_latex(table, study))
    mme = mme_subtask_rows(mine, table)
    if not mme.empty:
        write_tables(mme, folder, f"{study}_mme", latex=to_latex(table, study, mme))
    compare = compare_table(table)
    if not compare.empty:
        write_tables(compare, folder, f"{study}_compare")
    images = image_table(records, table)
    if not images.empty:
        write_tables(images, folder, f"{study}_images")
    bench = benchmarks_table(table)
    if not bench.empty:
        write_tables(bench, folder, f"{study}_benchmarks", latex=benchmarks_paper_table(bench, study))


def load_warnings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """One line per study whose finished configurations include runs timed under load (another
    harness process, or a load average well above what the run brings): their latency is not
    comparable with the others'."""
    from harness.reporting.figures import config_labels

    lines = []
    for study, table in tables.items():
        if "timed_under_load" not in table:
            continue
        flagged = table["timed_under_load"].fillna(False).astype(bool)
        if flagged.any():
            names = "; ".join(config_labels(table)[flagged])
            lines.append(f"warning: {study}: {int(flagged.sum())} configuration(s) timed under load, latency not "
                         f"comparable (rerun=true on a quiet machine): {names}")
    return lines


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
    parser.add_argument("--out", help="where tables/ and figures/ go (default: next to the runs folder, "
                        "e.g. results/ for results/runs)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--tables-only", action="store_true", help="build tables, not figures")
    only.add_argument("--figures-only", action="store_true", help="build figures from existing tables")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out) if args.out else default_out(args.runs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _report(args, out)
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        where = exc.filename or out
        print(f"error: cannot write the report under {out}: {exc.strerror or exc} ({where})", file=sys.stderr)
        return 1


def _report(args: argparse.Namespace, out: Path) -> int:
    """Tables (unless --figures-only), then figures (unless --tables-only)."""
    if not args.figures_only:
        tables = build_tables(args.runs, out)
        if not tables:
            print(f"error: no finished or failed runs under {', '.join(args.runs)}", file=sys.stderr)
            return 2
        both = pd.concat(tables.values(), ignore_index=True)
        for line in load_warnings(tables):
            print(line, file=sys.stderr)
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
