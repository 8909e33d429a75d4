"""`python -m harness.tokens encoder=E preprocess=P 'sizes=[808x1100,1920x1080]' format=table|json`

Visual-token counts per image size, from geometry alone: builds the strategy, plans each
size and asks the encoder class (no model, no weights, no pixels). Other overrides
(`preprocess.num_crops=4`, `encoder.connector=llava_next`, `reduce=visionzip`) work as in
`python -m harness`; an adaptive reduction prints `data-dependent (min..max)` (JSON: null plus
`visual_tokens_min` / `visual_tokens_max`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from harness.command import guarded, wants_help
from harness.config import ConfigError, compose
from harness.pipeline.job import prepare_job
from harness.registry import UnknownChoiceError

FORMATS = ("table", "json")
COLUMNS = ("size", "rows", "cols", "views", "executed_views", "visual_tokens")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """`[808x1100,1920x1080]` (brackets optional) -> [(808, 1100), (1920, 1080)]."""
    sizes = []
    for part in text.strip().strip("[]").split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", part)
        if not m or min(int(m[1]), int(m[2])) <= 0:
            raise ConfigError(f"sizes: {part!r} is not WIDTHxHEIGHT with positive integers, e.g. 808x1100")
        sizes.append((int(m[1]), int(m[2])))
    return sizes


def count(overrides: Sequence[str], sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """One row per size: grid, views, executed views and visual tokens."""
    job = prepare_job(compose(overrides, {"encoder.weights": "random"}))
    encoder_cls, strategy = job.encoder_cls, job.strategy
    connector = job.encoder_kwargs.get("connector")
    try:
        rows = []
        for w, h in sizes:
            layout = strategy.plan(w, h)
            encoder_cls.check_layout(layout, connector)
            n = encoder_cls.count_tokens(layout, connector, job.reducer)
            row = {
                "size": f"{w}x{h}", "rows": layout.grid[0], "cols": layout.grid[1], "views": layout.n_views,
                "executed_views": layout.executed_views, "visual_tokens": n,
                "view": "{}x{}".format(*layout.view_wh),  # JSON only: the size of each encoded view
            }
            if n is None:  # adaptive reduction: decided per image, within bounds
                lo, hi = encoder_cls.token_range(layout, connector, job.reducer)
                row.update(visual_tokens_min=lo, visual_tokens_max=hi)
            rows.append(row)
    except (ValueError, UnknownChoiceError) as exc:
        raise ConfigError(str(exc)) from exc
    return rows


def cell(row: dict[str, Any], column: str) -> str:
    """Table text; an adaptive reduction's count reads `data-dependent (lo..hi)`."""
    if column == "visual_tokens" and row[column] is None:
        return f"data-dependent ({row['visual_tokens_min']}..{row['visual_tokens_max']})"
    return str(row[column])


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    cells = [{c: cell(r, c) for c in COLUMNS} for r in rows]
    widths = {c: max(len(c), *(len(x[c]) for x in cells)) for c in COLUMNS}
    lines = ["  ".join(c.rjust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(x[c].rjust(widths[c]) for c in COLUMNS) for x in cells]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):
        print(__doc__)
        return 0
    return guarded(lambda: _main(args), "harness.tokens")


def _main(args: list[str]) -> int:
    sizes_text, fmt, overrides = "[808x1100,1920x1080]", "table", []
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "sizes":
            sizes_text = value
        elif key == "format":
            fmt = value
        else:
            overrides.append(arg)
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    print(render(count(overrides, parse_sizes(sizes_text)), fmt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
