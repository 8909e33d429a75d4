"""From stored runs to what a paper shows: figures from tables only (`figures`), one style and the
check that no text is cut off or overlaps (`style`), LaTeX tables (`paper`), the benchmark table
of a study (`benchmark_table`). The command is `harness.report`."""
