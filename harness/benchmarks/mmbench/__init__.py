"""MMBench (Liu et al., ECCV 2024), English dev split: multiple-choice questions, each asked in
every rotation of its options (circular evaluation: right only when every rotation is right),
options extracted from the response as the toolkit does (no judge model). Data (`data`); prompts,
option extraction and circular scoring (`prompts`, `scoring`). Sources: docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("mmbench")
class MMBenchBenchmark(Benchmark):
    task = "multiple_choice"
    main_metrics = ("mmbench_circular_accuracy",)
    main_label = "MMBench circular accuracy"
