"""Encoders: backbone + connector, from crops to LLM-facing visual tokens."""

from __future__ import annotations

from harness.encoders.base import Encoder
from harness.registry import Registry

ENCODERS: Registry[type[Encoder]] = Registry("encoder", "harness.encoders")

__all__ = ["ENCODERS", "Encoder"]
