"""Figures of the benchmarks_by_strategy study, from results/tables/benchmarks_by_strategy.parquet:
each benchmark's headline score against visual tokens per configuration (one panel per
benchmark, one colour per VLM family), and the same numbers as one table (configuration x
benchmark, `benchmarks_by_strategy_scores.{csv,md}`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's harness

import matplotlib.pyplot as plt
import pandas as pd

from harness import style
from harness.report_figures import StudyTables, study_main

# Each benchmark's headline (docs/benchmarks.md): MME perception + cognition; POPE F1; TextVQA
# VQA accuracy; DocVQA ANLS. A benchmark not named here: its first `metric:<benchmark>_*` column.
HEADLINE = {
    "mme": (("metric:mme_perception", "metric:mme_cognition"), "MME (perception + cognition)"),
    "pope": (("metric:pope_f1",), "POPE F1"),
}


def label(row: pd.Series) -> str:
    params = [f"{c[3:]}={row[c]:g}" if isinstance(row[c], float) else f"{c[3:]}={row[c]}"
              for c in ("pp_max_tiles", "pp_num_crops") if c in row and pd.notna(row[c])]
    reduce = f" + {row['reduce']}" if "reduce" in row and isinstance(row["reduce"], str) and row["reduce"] else ""
    return f"{row['strategy']}" + (f" ({', '.join(params)})" if params else "") + reduce


def headline(table: pd.DataFrame, benchmark: str) -> tuple[pd.Series, str]:
    """The benchmark's headline score per row and its axis label (NaN where absent)."""
    columns, name = HEADLINE.get(benchmark, ((), ""))
    present = [c for c in columns if c in table]
    if not present:
        present = sorted(c for c in table if c.startswith(f"metric:{benchmark}_"))[:1]
        name = present[0].removeprefix("metric:") if present else ""
    if not present:
        return pd.Series(float("nan"), index=table.index), ""
    return table[present].sum(axis=1, min_count=len(present)), name


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """Finished runs as rows (vlm, configuration, benchmark, visual tokens, score)."""
    ok = table[table["status"] == "ok"] if "status" in table else table
    rows = []
    for benchmark, grp in ok.groupby("dataset", sort=True):
        score, name = headline(grp, str(benchmark))
        for (_, row), value in zip(grp.iterrows(), score, strict=True):
            if pd.notna(value):
                rows.append({"vlm": row.get("vlm"), "config": label(row), "benchmark": benchmark, "metric": name,
                             "visual_tokens_mean": row["visual_tokens_mean"], "score": float(value)})
    return pd.DataFrame(rows, columns=["vlm", "config", "benchmark", "metric", "visual_tokens_mean", "score"])


def score_table(frame: pd.DataFrame, out: Path) -> list[Path]:
    """One table: configuration (with its family) x benchmark headline score."""
    if frame.empty:
        return []
    pivot = frame.pivot_table(index=["vlm", "config"], columns="benchmark", values="score", aggfunc="mean")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "benchmarks_by_strategy_scores.csv", out / "benchmarks_by_strategy_scores.md"]
    pivot.to_csv(paths[0])
    paths[1].write_text(pivot.to_markdown(floatfmt=".3g") + "\n")
    return paths


def score_vs_tokens(frame: pd.DataFrame, out: Path) -> list[Path]:
    if frame.empty:
        print("skip score_vs_tokens_by_benchmark: no run with answers")
        return []
    benchmarks = sorted(frame["benchmark"].unique())
    families = sorted(frame["vlm"].astype(str).unique())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(style.PAGE_WIDTH_IN, 2.4), squeeze=False)
    for ax, benchmark in zip(axes[0], benchmarks, strict=True):
        grp = frame[frame["benchmark"] == benchmark]
        for family in families:
            fam = grp[grp["vlm"].astype(str) == family].sort_values("visual_tokens_mean")
            ax.plot(fam["visual_tokens_mean"], fam["score"], marker="o", color=style.color_of(family, families),
                    label=family)
        ax.set_xscale("log")
        ax.set_title(benchmark)
        ax.set_xlabel("visual tokens (mean)")
        ax.set_ylabel(grp["metric"].iloc[0])
    axes[0][0].legend(frameon=False, fontsize="x-small")
    fig.tight_layout()
    return style.save(fig, out, "score_vs_tokens_by_benchmark")


def draw(tables: StudyTables, out: Path) -> list[Path]:
    frame = scores(tables.main)
    return [*score_vs_tokens(frame, out), *score_table(frame, out)]


if __name__ == "__main__":
    sys.exit(study_main("benchmarks_by_strategy", draw))
