"""One figure style for every study, and saving that gives the same bytes from the same data.

PDF: TrueType fonts embedded (`pdf.fonttype 42`), no creation date; PNG: no `Software` text;
SVG: fixed hash salt. Call `apply()` before drawing and `save()` to write PDF + PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "vision-encoder-harness",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "standard",
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "image.cmap": "viridis",
}
# One colour per encoder and one marker per strategy, stable across figures.
COLORS = plt.get_cmap("tab10").colors
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
PAGE_WIDTH_IN = 7.0


def apply() -> None:
    matplotlib.rcParams.update(RC)


def color_of(name: str, names: list[str]) -> tuple[float, ...]:
    return COLORS[sorted(names).index(name) % len(COLORS)]


def marker_of(name: str, names: list[str]) -> str:
    return MARKERS[sorted(names).index(name) % len(MARKERS)]


def save(fig: plt.Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `<stem>.pdf` and `<stem>.png` reproducibly and close the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.pdf", out_dir / f"{stem}.png"]
    fig.savefig(paths[0], metadata={"CreationDate": None, "ModDate": None})
    fig.savefig(paths[1], metadata={"Software": None})
    plt.close(fig)
    return paths
