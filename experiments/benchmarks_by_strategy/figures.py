"""Figure of the benchmarks_by_strategy study, from results/tables/benchmarks_by_strategy.parquet:
each benchmark's main score (MME perception + cognition, POPE F1, TextVQA accuracy, DocVQA ANLS)
against mean visual tokens per image, one panel per benchmark, one series per family (its
unreduced budgets joined by a solid line, its reduced arms by a dashed one), each point
labelled with its arm (`max 12 tiles (native)`, `max 4 tiles +pool(2)`)."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from harness.benchmarks import BENCHMARKS
from harness.reporting import style
from harness.reporting.benchmark_table import benchmark_order, scores
from harness.reporting.figures import StudyTables, study_main

PANELS_PER_ROW = 2


def score_vs_tokens_figure(table: pd.DataFrame) -> plt.Figure | None:
    """The figure (not yet saved), or None when no finished run has a benchmark score."""
    rows = scores(table).dropna(subset=["score", "visual_tokens_mean"]) if "visual_tokens_mean" in table else None
    if rows is None or rows.empty:
        return None
    benches = benchmark_order(list(rows["benchmark"]))
    families = sorted(rows["family"].unique())
    n_rows = -(-len(benches) // PANELS_PER_ROW)
    n_cols = min(PANELS_PER_ROW, len(benches))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(style.PAGE_WIDTH_IN, 2.6 * n_rows), squeeze=False)
    for ax in axes.flat[len(benches):]:
        ax.set_visible(False)
    for ax, bench in zip(axes.flat, benches, strict=False):
        panel = rows[rows["benchmark"] == bench]
        for family in families:
            fam = panel[panel["family"] == family]
            reduced = fam["reduce"].fillna("none").ne("none") if "reduce" in fam else pd.Series(False, fam.index)
            for part, dashed in ((fam[~reduced], False), (fam[reduced], True)):
                if part.empty:
                    continue
                part = part.sort_values("visual_tokens_mean")
                ax.plot(part["visual_tokens_mean"], part["score"], color=style.color_of(family, families),
                        marker="s" if dashed else "o", markerfacecolor="none" if dashed else None,
                        linestyle="--" if dashed else "-", linewidth=0.8)
                for x, y, arm in zip(part["visual_tokens_mean"], part["score"], part["arm"], strict=True):
                    ax.annotate(arm, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=5,
                                gid=style.POINT_LABEL)
        ax.set_xscale("log")
        label = BENCHMARKS.get(bench).main_label  # `TextVQA accuracy`: the name, then the measure
        ax.set_title(label.split()[0])
        ax.set_xlabel("visual tokens per image (mean)")
        ax.set_ylabel(label)
    handles = [Line2D([], [], color=style.color_of(f, families), marker="o", label=f) for f in families]
    handles.append(Line2D([], [], color="0.4", marker="s", markerfacecolor="none", linestyle="--",
                          label="with token reduction"))
    style.legend_below(fig, handles, [h.get_label() for h in handles])
    return fig


def draw(tables: StudyTables, out: Path) -> list[Path]:
    fig = score_vs_tokens_figure(tables.main)
    if fig is None:
        print("skip score_vs_tokens: no finished run with a benchmark score")
        return []
    return style.save(fig, out, "score_vs_tokens")


if __name__ == "__main__":
    sys.exit(study_main("benchmarks_by_strategy", draw))
