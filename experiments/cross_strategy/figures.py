"""Figures of the cross_strategy study, from results/tables/cross_strategy{,_mme,_compare}.parquet."""

import sys
from pathlib import Path

from harness.reporting.figures import (
    StudyTables,
    cka_heatmap,
    latency_vs_tokens,
    mme_bars,
    quality_vs_tokens,
    study_main,
)


def draw(tables: StudyTables, out: Path) -> list[Path]:
    paths = [*quality_vs_tokens(tables.main, out), *latency_vs_tokens(tables.main, out)]
    if tables.compare.empty:
        print("skip cka_heatmap: no cross_strategy_compare table")
    else:
        paths += cka_heatmap(tables.compare, tables.main, out)
    if tables.mme.empty:
        print("skip mme_bars: no cross_strategy_mme table")
    else:
        paths += mme_bars(tables.mme, out, tables.main)
    return paths


if __name__ == "__main__":
    sys.exit(study_main("cross_strategy", draw))
