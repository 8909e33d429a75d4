"""`python -m harness.report` / `harness-report`: tables and figures from finished runs.

Reads run folders only (never runs a model): one summary row per run, written as Parquet,
CSV and Markdown under `<out>/tables/`, and a latency-against-visual-tokens figure as PDF and
PNG under `<out>/figures/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from harness.metrics.compare import compare_groups
from harness.metrics.run_quality import quality_table
from harness.store import find_runs, load_records

SUMMARY_COLUMNS = [
    "study", "encoder", "encoder_size", "weights", "strategy", "strategy_params", "dataset", "device", "dtype",
    "n_images", "n_errors", "visual_tokens_mean", "views_total", "preprocess_p50_ms", "encode_p50_ms",
    "encode_p95_ms", "encode_images_per_s", "peak_rss_mb", "peak_allocated_mb", "weights_mb", "run_id", "run_dir",
]
TERMINAL_COLUMNS = ["encoder", "strategy", "n_images", "n_errors", "visual_tokens_mean", "encode_p50_ms",
                    "encode_images_per_s"]


def summary_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per run, from the run-level records."""
    runs = records[records["kind"] == "run"]
    cols = [c for c in SUMMARY_COLUMNS if c in runs.columns]
    return runs[cols].sort_values(["study", "encoder", "strategy", "run_id"]).reset_index(drop=True)


def write_tables(table: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.parquet", out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    table.to_parquet(paths[0], index=False)
    table.to_csv(paths[1], index=False)
    paths[2].write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    return paths


def latency_vs_tokens(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Encode latency (p50 per image) against visual tokens per image, one point per run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for (encoder, strategy), grp in table.groupby(["encoder", "strategy"], sort=True):
        ax.scatter(grp["visual_tokens_mean"], grp["encode_p50_ms"], label=f"{encoder} / {strategy}", s=24)
    ax.set_xlabel("visual tokens per image (mean)")
    ax.set_ylabel("encode latency p50 (ms / image)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    paths = [out_dir / "latency_vs_tokens.pdf", out_dir / "latency_vs_tokens.png"]
    fig.savefig(paths[0], metadata={"CreationDate": None})
    fig.savefig(paths[1], dpi=200, metadata={"Software": None})
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness-report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=["results/runs"], help="run folders or folders that hold them")
    parser.add_argument("--out", default="results", help="where tables/ and figures/ go (default: results)")
    args = parser.parse_args(argv)
    run_dirs = find_runs(*args.runs)
    if not run_dirs:
        print(f"error: no finished runs under {', '.join(args.runs)}", file=sys.stderr)
        return 2
    table = summary_table(load_records(run_dirs))
    out = Path(args.out)
    tables = write_tables(table, out / "tables", "summary")
    figures = latency_vs_tokens(table, out / "figures")
    quality = quality_table(load_records(run_dirs))  # run-level embedding-quality rows, one row per run
    if not quality.empty:
        tables += write_tables(quality, out / "tables", "quality")
    compare = compare_groups(run_dirs)  # CKA, mutual kNN, stability between runs over the same images
    if not compare.empty:
        tables += write_tables(compare, out / "tables", "compare")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table[[c for c in TERMINAL_COLUMNS if c in table.columns]].to_string(index=False, float_format="%.4g"))
    print(f"\n{len(run_dirs)} runs. Tables: {', '.join(map(str, tables))}")
    print(f"Figures: {', '.join(map(str, figures))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
