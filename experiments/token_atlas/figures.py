"""Figure of the token_atlas study (visual tokens against aspect ratio per strategy), from
results/tables/token_atlas.parquet (written by `python -m harness.atlas`)."""

import sys
from pathlib import Path

from harness.reporting.figures import StudyTables, study_main, tokens_vs_aspect


def draw(tables: StudyTables, out: Path) -> list[Path]:
    return tokens_vs_aspect(tables.main, out)


if __name__ == "__main__":
    sys.exit(study_main("token_atlas", draw))
