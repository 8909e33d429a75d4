"""The benchmark box: one folder per benchmark (`mme/`, `pope/`, `textvqa/`, ...), each with its
data (`data.py`, a registered dataset), its prompts per protocol (`prompts.py`), its scoring
(`scoring.py`) and, in `__init__.py`, its `Benchmark` class. The registry fills itself by
importing every folder, so a new benchmark is one folder (plus its dataset config).
Rules and sources: docs/benchmarks.md."""

from __future__ import annotations

from harness.benchmarks.base import Benchmark
from harness.registry import Registry

BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", "harness.benchmarks")


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark `name` (unknown names fail naming the valid ones)."""
    return BENCHMARKS.get(name)()


__all__ = ["BENCHMARKS", "Benchmark", "get_benchmark"]
