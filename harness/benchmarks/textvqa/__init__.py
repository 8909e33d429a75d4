"""TextVQA (Singh et al., CVPR 2019): questions that need reading the text in natural images;
10 human answers per question, VQA accuracy with the official answer normalisation. Data
(`data`); prompts and scoring (`prompts`, `scoring`). Sources: docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("textvqa")
class TextVQABenchmark(Benchmark):
    task = "short_answer"
    many_answers = True
    main_metrics = ("textvqa_accuracy",)
    main_label = "TextVQA accuracy"
