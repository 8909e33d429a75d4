"""DocVQA (Mathew et al., WACV 2021), single-page document images; several accepted answers per
question, scored by ANLS. Data (`data`); prompts and scoring (`prompts`, `scoring`). Sources:
docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("docvqa")
class DocVQABenchmark(Benchmark):
    task = "short_answer"
    many_answers = True
    main_metrics = ("docvqa_anls",)
    main_label = "DocVQA ANLS"
