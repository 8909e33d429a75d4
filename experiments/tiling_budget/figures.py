"""Figures of the tiling_budget study, from results/tables/tiling_budget.parquet."""

import sys
from pathlib import Path

from harness.reporting.figures import StudyTables, latency_vs_tokens, memory_vs_views, quality_vs_tokens, study_main


def draw(tables: StudyTables, out: Path) -> list[Path]:
    return [*latency_vs_tokens(tables.main, out), *memory_vs_views(tables.main, out),
            *quality_vs_tokens(tables.main, out)]


if __name__ == "__main__":
    sys.exit(study_main("tiling_budget", draw))
