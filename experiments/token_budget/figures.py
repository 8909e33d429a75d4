"""Figures of the token_budget study, from results/tables/token_budget.parquet.

`token_budget`: per family (encoder), the MME score when a VLM wrote one (else the encoder-only
quality metric) against total visual tokens per image, one line per reduction method, the
unreduced runs (tile budgets: fewer pinpoints / max_tiles) as one more line on the same axes;
below, vision-side latency (backbone + reduction + connector, p50) on the same token axis, or
prefill latency when the table has it.
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from harness.reporting import style
from harness.reporting.figures import (
    PARAM_PREFIXES,
    StudyTables,
    metric_header,
    natural_key,
    point_labels,
    quality_column,
    study_main,
)

TILES = "fewer tiles (no reduction)"
MME_COLUMNS = ("metric:mme_perception", "metric:mme_total")
PREFILL_COLUMN = "prefill_p50_ms"


def method_label(row: pd.Series) -> str:
    """The line a run belongs to: its reduction method (PruMerge by variant and mode), or the
    tile-budget line for unreduced runs."""
    name = row.get("reduce")
    if not isinstance(name, str) or name == "none":
        return TILES
    if name == "prumerge":
        fixed = row.get("rd_adaptive") is False or str(row.get("rd_adaptive")).lower() == "false"
        return f"{row.get('rd_variant', 'prumerge')}{' (fixed)' if fixed else ''}"
    return name


def latency_ms(table: pd.DataFrame) -> pd.Series:
    if PREFILL_COLUMN in table and table[PREFILL_COLUMN].notna().any():
        return table[PREFILL_COLUMN]
    parts = [c for c in ("encode_p50_ms", "reduce_p50_ms", "connector_p50_ms") if c in table]
    return table[parts].fillna(0.0).sum(axis=1)


def token_budget(table: pd.DataFrame, out: Path) -> list[Path]:
    ok = table[table["status"] == "ok"] if "status" in table else table
    if "visual_tokens_mean" not in ok or ok.empty:
        print("skip token_budget: the table has no visual_tokens_mean column")
        return []
    ok = ok.assign(method=ok.apply(method_label, axis=1), latency=latency_ms(ok))
    quality = next((c for c in MME_COLUMNS if c in ok and ok[c].notna().any()), None) or quality_column(ok)
    families = sorted(ok["encoder"].unique())
    methods = sorted(ok["method"].unique(), key=natural_key)
    rows = 2 if quality else 1
    fig, axes = plt.subplots(rows, len(families), figsize=(style.PAGE_WIDTH_IN, 2.3 * rows), squeeze=False,
                             sharex="col")
    for j, family in enumerate(families):
        fam = ok[ok["encoder"] == family]
        panels = [(quality, metric_header(quality) if quality else ""), ("latency", "")]
        panels = panels if quality else panels[1:]
        for i, (col, label) in enumerate(panels):
            ax = axes[i][j]
            for method in methods:
                pts = fam[fam["method"] == method].dropna(subset=[col]).sort_values("visual_tokens_mean")
                if pts.empty:
                    continue
                ax.plot(pts["visual_tokens_mean"], pts[col], marker=style.marker_of(method, methods),
                        color=style.color_of(method, methods), linestyle="--" if method == TILES else "-",
                        label=method)
                budget = [c for c in pts.columns if c.startswith(PARAM_PREFIXES) and pts[c].nunique() > 1]
                point_labels(ax, pts["visual_tokens_mean"], pts[col], pts, budget)
            ax.set_xscale("log")
            if i == 0:
                ax.set_title(family)
            if j == 0:
                ax.set_ylabel(label or ("prefill p50 (ms)" if PREFILL_COLUMN in ok else "vision p50 (ms/img)"))
            if i == rows - 1:
                ax.set_xlabel("visual tokens per image (mean)")
    style.legend_below(fig)
    return style.save(fig, out, "token_budget")


def draw(tables: StudyTables, out: Path) -> list[Path]:
    return token_budget(tables.main, out)


if __name__ == "__main__":
    sys.exit(study_main("token_budget", draw))
