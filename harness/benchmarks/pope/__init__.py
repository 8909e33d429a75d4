"""POPE (Li et al., EMNLP 2023, arXiv:2305.10355): object hallucination as yes/no questions
"Is there a <object> in the image?" about COCO val2014 images, in three settings of how the absent
objects are drawn (random, popular, adversarial). Data (`data`), protocols (`prompts`), scoring
(`scoring`: accuracy, precision, recall, F1, yes-ratio). Sources: docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("pope")
class POPEBenchmark(Benchmark):
    task = "yes_no"
    main_metrics = ("pope_f1",)
    main_label = "POPE F1"
