"""One figure style for every study, and saving that gives the same bytes from the same data.

PDF: TrueType fonts embedded (`pdf.fonttype 42`), no creation date; PNG: no `Software` text;
SVG: fixed hash salt. Call `apply()` before drawing and `save()` to write PDF + PNG.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.legend import Legend
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter, ScalarFormatter

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
    "savefig.bbox": "tight",  # nothing drawn is ever cut off; `text_problems` keeps layouts clean
    "savefig.pad_inches": 0.03,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "image.cmap": "viridis",
}
# One colour per encoder and one marker per strategy, stable across figures.
COLORS = plt.get_cmap("tab10").colors
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "8")
COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
PAGE_WIDTH_IN = 7.0


def apply() -> None:
    matplotlib.rcParams.update(RC)


def color_of(name: str, names: list[str]) -> tuple[float, ...]:
    return COLORS[sorted(names).index(name) % len(COLORS)]


def marker_of(name: str, names: list[str]) -> str:
    return MARKERS[sorted(names).index(name) % len(MARKERS)]


def text_problems(fig: plt.Figure, tolerance_px: float = 1.0) -> list[str]:
    """What a reader would see as broken text in `fig` as drawn: a text that leaves the figure
    (cut off when saved) or overlaps another text (labels printed over each other). Empty when
    the figure is clean. Each text is its rotated rectangle (matplotlib's renderer sizes), so
    slanted tick labels side by side do not count as overlapping."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    tick_labels, drawn_ticks = _tick_labels(fig)
    problems, shapes = [], []
    for text in fig.findobj(Text):
        if id(text) in tick_labels and id(text) not in drawn_ticks:
            continue
        if not text.get_text().strip() or not _shown(text):
            continue
        corners = _corners(text, renderer, shrink=tolerance_px)
        if corners is None:
            continue
        name = repr(text.get_text()[:40])
        x, y = corners[:, 0], corners[:, 1]
        if x.min() < page.x0 - tolerance_px or y.min() < page.y0 - tolerance_px or \
                x.max() > page.x1 + tolerance_px or y.max() > page.y1 + tolerance_px:
            problems.append(f"{name} leaves the figure ({x.min():.0f},{y.min():.0f} to {x.max():.0f},{y.max():.0f} "
                            f"in {page.width:.0f}x{page.height:.0f} px)")
        shapes.append((name, corners))
    for i, (name_a, a) in enumerate(shapes):
        for name_b, b in shapes[i + 1:]:
            if _intersect(a, b):
                problems.append(f"{name_a} overlaps {name_b}")
    return problems


def _corners(text: Text, renderer: object, shrink: float = 0.0) -> np.ndarray | None:
    """The four corners (pixels) of a text's rotated rectangle: its unrotated size turned by its
    rotation about the centre of its drawn box; `shrink` pixels off every side."""
    box = text.get_window_extent(renderer)
    if box.width <= 0 or box.height <= 0:
        return None
    angle = np.deg2rad(text.get_rotation())
    if abs(np.sin(angle)) < 1e-9 or abs(np.cos(angle)) < 1e-9:  # upright or quarter turn: the box itself
        half = np.array([box.width, box.height]) / 2 - shrink
        rotation = np.eye(2)
    else:
        lines = text.get_text().split("\n")
        sizes = [renderer.get_text_width_height_descent(line or " ", text.get_fontproperties(), ismath=False)
                 for line in lines]
        width = max(w for w, _, _ in sizes)
        height = sum(h for _, h, _ in sizes) * (text.get_linespacing() if len(lines) > 1 else 1.0)
        half = np.array([width, height]) / 2 - shrink
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if (half <= 0).any():
        return None
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
    return unit @ rotation.T + centre


def _intersect(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two convex quadrilaterals overlap (separating-axis test on their edge normals)."""
    for shape in (a, b):
        for k in range(4):
            edge = shape[(k + 1) % 4] - shape[k]
            normal = np.array([-edge[1], edge[0]])
            pa, pb = a @ normal, b @ normal
            if pa.max() <= pb.min() or pb.max() <= pa.min():
                return False
    return True


def _tick_labels(fig: plt.Figure) -> tuple[set[int], set[int]]:
    """Ids of every tick label, and of those drawn (ticks inside the view, labels switched on):
    matplotlib keeps labels of ticks outside the view with stale positions."""
    every, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                every.update((id(tick.label1), id(tick.label2)))
            for tick in axis._update_ticks():
                drawn.update(id(label) for label in (tick.label1, tick.label2) if label.get_visible())
    return every, drawn


def _shown(text: Text) -> bool:
    """Whether a text is drawn: visible, and so are its axes and the legend holding it."""
    if not text.get_visible():
        return False
    axes = text.axes
    return axes is None or axes.get_visible()


def legend_below(fig: plt.Figure, handles: list | None = None, labels: list[str] | None = None,
                 ncols: int | None = None) -> Legend | None:
    """The figure's legend under its axes, never over data or cut off: long labels wrapped to the
    figure's width, the figure made taller by the legend's height (the axes keep their size) and
    laid out again. Takes the handles of every axes when none are given (each label once)."""
    if handles is None:
        handles, labels, seen = [], [], set()
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in seen and not lab.startswith("_"):
                    seen.add(lab)
                    handles.append(h)
                    labels.append(lab)
    if not handles:
        fig.tight_layout()
        return None
    width_in, height_in = fig.get_size_inches()
    longest = max(len(str(lab)) for lab in labels)
    ncols = ncols or max(1, min(len(labels), int(width_in / (0.06 * min(longest, 60) + 0.4))))
    chars = max(12, int((width_in / ncols - 0.4) / 0.06))  # ~0.06 in per character at legend size
    wrapped = [textwrap.fill(str(lab), chars) for lab in labels]
    fig.tight_layout()
    legend = fig.legend(handles, wrapped, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=ncols, frameon=False)
    fig.canvas.draw()
    extra = legend.get_window_extent().height / fig.dpi + 0.05
    fig.set_size_inches(width_in, height_in + extra)
    fig.tight_layout(rect=(0, extra / (height_in + extra), 1, 1))
    return legend


POINT_LABEL = "point-label"  # gid of the texts `declutter` may move or drop
_OFFSETS = ((3, 3, "left", "bottom"), (3, -3, "left", "top"), (-3, 3, "right", "bottom"), (-3, -3, "right", "top"),
            (0, 6, "center", "bottom"), (0, -6, "center", "top"))


def declutter(fig: plt.Figure) -> int:
    """Place each point label (`gid=POINT_LABEL` annotations) at the first of six spots around
    its point where it overlaps no text and stays inside the figure; a label with no free spot
    is left out. Returns how many were left out."""
    labels = [t for t in fig.findobj(Annotation) if t.get_gid() == POINT_LABEL and t.get_visible()]
    if not labels:
        return 0
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ids = {id(t) for t in labels}
    tick_labels, drawn_ticks = _tick_labels(fig)
    placed = [t.get_window_extent(renderer) for t in fig.findobj(Text)
              if id(t) not in ids and t.get_text().strip() and _shown(t)
              and (id(t) not in tick_labels or id(t) in drawn_ticks)]
    dropped = 0
    for label in labels:
        for dx, dy, ha, va in _OFFSETS:
            label.set_position((dx, dy))
            label.set_horizontalalignment(ha)
            label.set_verticalalignment(va)
            box = label.get_window_extent(renderer)
            if fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1) and \
                    not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
        else:
            label.set_visible(False)
            dropped += 1
    return dropped


def number_text(value: float | int) -> str:
    """A number as a paper prints it: integers (also integral floats) in full with thousands
    separators (1,003,520, never 1.00352e+06), other floats to 4 significant figures."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def plain_ticks(fig: plt.Figure) -> None:
    """Ticks in plain numbers: thousands separated on linear axes that reach 1,000 (8,000, not
    8000); log axes as 600, 1,000, 2,000 (not 6x10^2), major ticks always, minor ticks too when
    the axis spans at most a factor of 3 (every one), or 100 (those at 2 and 5 times a power of
    ten); wider axes would crowd."""
    for ax in fig.axes:
        for axis, scale, limits in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                    (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
            if scale == "linear" and isinstance(axis.get_major_formatter(), ScalarFormatter) \
                    and max(abs(v) for v in limits) >= 1000:
                axis.set_major_formatter(FuncFormatter(lambda v, _: number_text(float(v))))
                continue
            if scale != "log" or not isinstance(axis.get_major_formatter(), LogFormatter):
                continue
            axis.set_major_formatter(FuncFormatter(lambda v, _: number_text(float(v))))
            lo, hi = sorted(limits)
            span = hi / lo if lo > 0 else float("inf")
            if span <= 3:
                axis.set_minor_formatter(FuncFormatter(lambda v, _: number_text(float(v))))
            elif span <= 100:
                axis.set_minor_formatter(FuncFormatter(
                    lambda v, _: number_text(float(v)) if f"{v:.0e}"[0] in "25" else ""))
            else:
                axis.set_minor_formatter(NullFormatter())


def save(fig: plt.Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `<stem>.pdf` and `<stem>.png` reproducibly and close the figure (log axes in plain
    numbers and point labels placed first, see `plain_ticks` and `declutter`)."""
    plain_ticks(fig)
    declutter(fig)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.pdf", out_dir / f"{stem}.png"]
    fig.savefig(paths[0], metadata={"CreationDate": None, "ModDate": None})
    fig.savefig(paths[1], metadata={"Software": None})
    plt.close(fig)
    return paths
