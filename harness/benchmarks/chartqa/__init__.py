"""ChartQA (Masry et al., Findings of ACL 2022), test split: human-written and augmented
(machine-generated) questions about charts, scored by relaxed accuracy (5 % on numbers). Data
(`data`); prompts and scoring (`prompts`, `scoring`). Sources: docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("chartqa")
class ChartQABenchmark(Benchmark):
    task = "short_answer"
    main_metrics = ("chartqa_relaxed_overall",)
    main_label = "ChartQA relaxed accuracy"
