"""Figures of the quickstart study (what `make demo` runs), from results/tables/quickstart*.parquet:
latency, memory and quality against tokens, and the CKA heatmap between the three encoders."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's harness

from harness.report_figures import draw_any_study, study_main

if __name__ == "__main__":
    sys.exit(study_main("quickstart", draw_any_study))
