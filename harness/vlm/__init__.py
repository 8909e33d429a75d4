"""The language model in the loop: a VLM family's language model answers questions from the
harness encoder's visual tokens (`Answerer`); the benchmark (harness/benchmarks/) writes each
question's user text under a toolkit's protocol and parses the response."""

from __future__ import annotations

from harness.registry import Registry
from harness.vlm.base import Answerer

VLMS: Registry[type[Answerer]] = Registry("vlm", "harness.vlm")

__all__ = ["VLMS", "Answerer"]
