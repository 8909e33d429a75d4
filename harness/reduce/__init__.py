"""Visual-token reduction between backbone and connector (docs/token_reduction.md).

One module per method, registered in `REDUCERS`; `build_reducer("visionzip", dominant=54,
contextual=10)` checks the parameters before any model exists.
"""

from __future__ import annotations

from typing import Any

from harness.reduce.base import Reducer, ViewFeatures
from harness.registry import Registry, check_kwargs

REDUCERS: Registry[type[Reducer]] = Registry("reduce method", "harness.reduce")


def build_reducer(name: str, **params: Any) -> Reducer:
    """Build a registered reducer; unknown names or parameters fail naming the valid ones."""
    cls = REDUCERS.get(name)
    params = {k: v for k, v in params.items() if v is not None}
    check_kwargs(cls, params, f"reduce method {name!r}")
    return cls(**params)


__all__ = ["REDUCERS", "Reducer", "ViewFeatures", "build_reducer"]
