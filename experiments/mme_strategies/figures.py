"""Figures of the mme_strategies study, from results/tables/mme_strategies{,_mme}.parquet:
the VLM's score against visual tokens per family (with its Pareto front), prefill latency
against visual tokens, and a configuration x subtask heatmap of scores."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.reporting import style
from harness.reporting.figures import StudyTables, natural_key, pareto_front, study_main

MME_TOTALS = ("metric:mme_perception", "metric:mme_cognition")
YES_NO = "metric:yes_no_score"


def label(row: pd.Series) -> str:
    params = [f"{c[3:]}={row[c]:g}" if isinstance(row[c], float) else f"{c[3:]}={row[c]}"
              for c in ("pp_max_tiles", "pp_num_crops") if c in row and pd.notna(row[c])]
    return f"{row['strategy']}" + (f" ({', '.join(params)})" if params else "")


def scored(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Finished runs with a score: MME perception + cognition when the dataset is MME, else the
    same rule's yes/no score (acc + acc+, max 200) of other datasets with yes/no questions."""
    ok = table[table["status"] == "ok"].copy() if "status" in table else table.copy()
    if all(c in ok for c in MME_TOTALS) and ok[list(MME_TOTALS)].notna().any().any():
        ok["score"] = ok[list(MME_TOTALS)].sum(axis=1, min_count=1)
        return ok.dropna(subset=["score"]), "MME score (perception + cognition)"
    if YES_NO in ok:
        ok["score"] = ok[YES_NO]
        return ok.dropna(subset=["score"]), "yes/no score (acc + acc+, max 200)"
    return ok.iloc[0:0], ""


def score_vs_tokens(table: pd.DataFrame, out: Path) -> list[Path]:
    ok, ylabel = scored(table)
    if ok.empty or "vlm" not in ok:
        print("skip mme_vs_tokens: no run with answers")
        return []
    families = sorted(ok["vlm"].unique())
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH_IN, 2.8))
    for family in families:
        grp = ok[ok["vlm"] == family]
        color = style.color_of(family, families)
        names = sorted({label(r) for _, r in grp.iterrows()}, key=natural_key)
        for k, name in enumerate(names):  # every configuration its own marker within its family's colour
            rows = grp[[label(r) == name for _, r in grp.iterrows()]]
            ax.scatter(rows["visual_tokens_mean"], rows["score"], color=color,
                       marker=style.MARKERS[k % len(style.MARKERS)], label=f"{family}: {name}")
        front = pareto_front(grp["visual_tokens_mean"].to_numpy(float), grp["score"].to_numpy(float))
        order = np.argsort(grp["visual_tokens_mean"].to_numpy(float)[front])
        if len(front) > 1:
            ax.plot(grp["visual_tokens_mean"].to_numpy(float)[front][order],
                    grp["score"].to_numpy(float)[front][order], color=color, linewidth=0.7,
                    label=f"{family}: Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("visual tokens per image (mean)")
    ax.set_ylabel(ylabel)
    style.legend_below(fig)
    return style.save(fig, out, "mme_vs_tokens")


def prefill_vs_tokens(table: pd.DataFrame, out: Path) -> list[Path]:
    ok = table[table["status"] == "ok"] if "status" in table else table
    if "prefill_p50_ms" not in ok or ok["prefill_p50_ms"].isna().all():
        print("skip prefill_vs_tokens: no prefill timings")
        return []
    ok = ok.dropna(subset=["prefill_p50_ms"])
    families = sorted(ok["vlm"].unique())
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH_IN, 2.6))
    for family in families:
        grp = ok[ok["vlm"] == family].sort_values("visual_tokens_mean")
        ax.plot(grp["visual_tokens_mean"], grp["prefill_p50_ms"], marker="o", color=style.color_of(family, families),
                label=family)
    ax.set_xlabel("visual tokens per image (mean)")
    ax.set_ylabel("prefill p50 (ms / question)")
    style.legend_below(fig)
    return style.save(fig, out, "prefill_vs_tokens")


def subtask_heatmap(mme: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    if mme.empty or "run_id" not in mme:
        print("skip strategy_subtask_heatmap: no per-subtask scores")
        return []
    runs = table.set_index("run_id")
    mme = mme[mme["run_id"].isin(runs.index)].copy()
    mme["config"] = [f"{runs.at[r, 'vlm']}: {label(runs.loc[r])}" for r in mme["run_id"]]
    pivot = mme.pivot_table(index="config", columns="category", values="score", aggfunc="mean", sort=True)
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH_IN, 0.8 + 0.3 * len(pivot)))
    image = ax.imshow(pivot.to_numpy(float), cmap="viridis", vmin=0, vmax=200, aspect="auto")
    ax.set_xticks(range(pivot.shape[1]), pivot.columns, rotation=45, ha="right")
    ax.set_yticks(range(pivot.shape[0]), pivot.index)
    fig.colorbar(image, ax=ax, label="score (max 200)")
    fig.tight_layout()
    return style.save(fig, out, "strategy_subtask_heatmap")


def draw(tables: StudyTables, out: Path) -> list[Path]:
    return [*score_vs_tokens(tables.main, out), *prefill_vs_tokens(tables.main, out),
            *subtask_heatmap(tables.mme, tables.main, out)]


if __name__ == "__main__":
    sys.exit(study_main("mme_strategies", draw))
