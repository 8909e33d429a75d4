"""Preprocessing strategies: image -> Layout (geometry) -> Views (normalised crops)."""

from __future__ import annotations

from typing import Any

from harness.preprocess.base import Strategy
from harness.registry import Registry, check_kwargs

STRATEGIES: Registry[type[Strategy]] = Registry("preprocess strategy", "harness.preprocess")


def build_strategy(name: str, **params: Any) -> Strategy:
    """Build a registered strategy; unknown names or parameters fail naming the valid ones."""
    cls = STRATEGIES.get(name)
    params = {k: v for k, v in params.items() if v is not None}
    check_kwargs(cls, params, f"strategy {name!r}")
    return cls(**params)


__all__ = ["STRATEGIES", "Strategy", "build_strategy"]
