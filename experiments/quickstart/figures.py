"""Figures of the quickstart study (what `make demo` runs), from results/tables/quickstart*.parquet:
latency, memory and quality against tokens, and the CKA heatmap between the three encoders."""

import sys

from harness.reporting.figures import draw_any_study, study_main

if __name__ == "__main__":
    sys.exit(study_main("quickstart", draw_any_study))
