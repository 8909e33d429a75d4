"""The language model in the loop: a VLM family's language model answers questions from the
harness encoder's visual tokens (`Answerer`), under an evaluation protocol (`protocols`)."""

from __future__ import annotations

from harness.registry import Registry
from harness.vlm.base import Answerer

VLMS: Registry[type[Answerer]] = Registry("vlm", "harness.vlm")

__all__ = ["VLMS", "Answerer"]
