"""Figures of the encoder_zoo study, from results/tables/encoder_zoo{,_mme,_compare}.parquet."""

import sys
from pathlib import Path

from harness.reporting.figures import (
    StudyTables,
    cka_heatmap,
    latency_vs_tokens,
    memory_vs_views,
    mme_bars,
    quality_vs_tokens,
    study_main,
)


def draw(tables: StudyTables, out: Path) -> list[Path]:
    paths = [*quality_vs_tokens(tables.main, out), *latency_vs_tokens(tables.main, out),
             *memory_vs_views(tables.main, out)]
    if tables.mme.empty:
        print("skip mme_bars: no encoder_zoo_mme table (runs wrote no per-subtask MME scores)")
    else:
        paths += mme_bars(tables.mme, out, tables.main)
    if tables.compare.empty:
        print("skip cka_heatmap: no encoder_zoo_compare table")
    else:
        paths += cka_heatmap(tables.compare, tables.main, out)
    return paths


if __name__ == "__main__":
    sys.exit(study_main("encoder_zoo", draw))
