"""What the reduction tests share: the method x parameter cases every test runs, and the reason
Phi-3's HD connector gives for refusing reduced tokens."""

from __future__ import annotations

from harness.reduce import REDUCERS

METHODS = [
    ("none", {}), ("cls_topk", {"keep": 64}), ("cls_topk", {"keep": 1}), ("uniform", {"keep": 64}),
    ("uniform", {"keep": 143}), ("pool", {"stride": 2}), ("pool", {"stride": 3}), ("pool", {"stride": 5}),
    ("visionzip", {"dominant": 54, "contextual": 10}), ("visionzip", {"dominant": 1, "contextual": 0}),
    ("visionzip", {"dominant": 100, "contextual": 44}),
    ("prumerge", {"adaptive": False}), ("prumerge", {"adaptive": False, "ratio": 0.25}),
    ("prumerge", {"variant": "prumerge_plus", "adaptive": False}),
    ("prumerge", {"variant": "prumerge_plus", "adaptive": False, "ratio": 0.3}),
    ("prumerge", {}), ("prumerge", {"variant": "prumerge_plus"}),
]
# Every registered method runs here, a new one with its defaults until it adds its own cases.
METHODS += [(name, {}) for name in REDUCERS.names() if name not in {m for m, _ in METHODS}]
PHI3_REASON = (
    "connector 'phi3_hd' cannot take reduced tokens: its HD transform puts a sub_GN after every row of the "
    "2x2-merged grid of the sub-image canvas and of the global view, and a reduced set has no rows; use reduce=none, "
    "or encoder.connector=flat"
)
