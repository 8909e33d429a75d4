"""Paper-ready LaTeX tables: human column names with units, three significant figures, a
caption saying what is held fixed, a label, and only the identity columns that vary plus the
results. The MME table in the paper's layout: subtasks in the official order, each group's
total (perception, cognition) after its subtasks (docs/mme.md).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.benchmarks.mme.subtasks import GROUPS
from harness.reporting.benchmark_table import MEASURES, benchmark_labels
from harness.reporting.figures import (
    ALWAYS_SHOWN,
    METRIC_PREFIX,
    config_labels,
    has_spread,
    label_fields,
    metric_header,
    telling_fields,
)
from harness.reporting.style import number_text

SIGNIFICANT = 3
# column -> header (units in parentheses); anything else: its name with spaces
HEADERS = {
    "encoder": "Encoder", "encoder_size": "Size", "weights": "Weights", "connector": "Connector", "attn": "Attention",
    "pool": "Pooling", "strategy": "Strategy", "dataset": "Dataset", "device": "Device", "dtype": "Precision",
    "seed": "Seed", "batch_views": "Crops per call", "status": "Status", "n_images": "Images",
    "visual_tokens_mean": "Visual tokens", "encode_p50_ms": "Encode p50 (ms/img)",
    "encode_iqr_ms": "Encode p25--p75 (ms/img)", "encode_images_per_s": "Throughput (img/s)",
    "peak_allocated_mb": "Peak GPU memory (MiB)", "peak_rss_mb": "Peak RSS (MiB)",
    "pp_max_tiles": "Max tiles", "pp_min_tiles": "Min tiles", "pp_num_crops": "Crops", "pp_thumbnail": "Thumbnail",
    "pp_tile_size": "Tile (px)", "pp_pinpoint_order": "Pinpoint order", "pp_pad_to_max_crops": "Pad crops",
    "pp_min_pixels": "Min pixels", "pp_max_pixels": "Max pixels", "reduce": "Reduction", "vlm": "VLM",
    "vlm_protocol": "Protocol", "vlm_weights": "VLM weights", "vlm_size": "VLM size",
    "vlm_max_new_tokens": "Max new tokens", "prefill_p50_ms": "Prefill p50 (ms)",
}
MAX_COLUMNS = 8  # a table wider than this is split into parts that fit a page
RESULTS = ("visual_tokens_mean", "encode_p50_ms", "encode_iqr_ms", "encode_images_per_s", "peak_allocated_mb",
           "peak_rss_mb", "prefill_p50_ms")


def significant(value: Any, digits: int = SIGNIFICANT) -> str:
    """`value` to `digits` significant figures in plain notation (integer digits are never
    dropped: 1234.5 -> 1235, 9.374 -> 9.37, 0.012345 -> 0.0123); missing -> `--`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    if decimals == 0:
        return number_text(round(value))  # 1,003,520: integer digits are never dropped
    return f"{value:.{decimals}f}"


def header(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    if column.startswith(METRIC_PREFIX):
        return metric_header(column)
    if column.startswith("dataset."):
        return "Dataset " + column.removeprefix("dataset.").replace("_", " ")
    return column.removeprefix("pp_").removeprefix("rd_").replace("_", " ").capitalize()


def _escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                       ("^", r"\textasciicircum{}")):
        text = text.replace(char, repl)
    return text.replace(r"\textbackslash\{\}", r"\textbackslash{}")


def _tabular(frame: pd.DataFrame, numeric: list[str], caption: str, label: str,
             groups: list[tuple[str, int]] | None = None, headers: list[str] | None = None) -> str:
    """A booktabs table environment; `groups` (name, span) adds a header row over the columns;
    `headers` replaces the column names (they may repeat, e.g. `Total` per group)."""
    align = "".join("r" if c in numeric else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    if groups:
        cells, rules, col = [], [], 1
        for name, span in groups:
            if name:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{_escape(name)}}}")
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            else:
                cells += [""] * span
            col += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines.append(" & ".join(_escape(str(c)) for c in (headers or list(frame.columns))) + r" \\")
    lines.append(r"\midrule")
    for _, row in frame.iterrows():
        lines.append(" & ".join(_escape(str(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _fixed(table: pd.DataFrame, shown: list[str]) -> str:
    """What every row shares, for the caption: `dtype float32, device cpu, num images 24`."""
    fields = label_fields(table)
    parts = []
    for col in fields.columns:
        values = fields[col].unique()
        if col not in shown and len(values) == 1 and values[0] != "-" and col not in ("pp_mean", "pp_std") \
                and not _is_path(values[0]):
            parts.append(f"{header(col).lower()} {values[0]}")
    return ", ".join(parts)


def _with_params(name: str, params: dict[str, str]) -> str:
    if name == "-":
        return "none"
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if v != "-")
    return f"{name} ({shown})" if shown else name


def _is_path(value: str) -> bool:
    """A local path (a weights folder, a dataset folder) says nothing to a reader of the paper."""
    return value.startswith(("/", "~", "./", "../")) or "\\" in value or value.count("/") > 1


def paper_table(table: pd.DataFrame, study: str) -> str:
    """The study table for a paper: encoder, strategy and the identity columns that tell its
    rows apart (as in the figure labels), then the results present
    (tokens, latency p50 and p25--p75, throughput, memory, quality metrics), status only when a
    configuration failed; three significant figures; caption with what is fixed."""
    table = table.reset_index(drop=True)
    if has_spread(table):  # one timed batch has no spread: the column would repeat the p50
        table = table.assign(encode_iqr_ms=[
            "--" if pd.isna(a) or pd.isna(b) or a == b else f"{significant(a)}--{significant(b)}"
            for a, b in zip(table["encode_p25_ms"], table["encode_p75_ms"], strict=True)])
    fields = label_fields(table)
    ident = [c for c in ALWAYS_SHOWN if c in table] + telling_fields(table)
    reduction = [c for c in ident if c.startswith("rd_")]
    if "reduce" in ident:  # one column: `visionzip (contextual=10, dominant=54)`, `none`
        fields["reduce"] = [_with_params(row["reduce"], {c.removeprefix("rd_"): row[c] for c in reduction})
                            for _, row in fields.iterrows()]
        ident = [c for c in ident if c not in reduction]
    metrics = sorted(c for c in table.columns if c.startswith("metric:") and table[c].notna().any())
    results = [c for c in (*RESULTS, *metrics) if c in table.columns and table[c].notna().any()]
    failed = "status" in table and (table["status"] != "ok").any()
    columns = {header(c): fields[c] for c in ident}
    if failed:
        columns[header("status")] = table["status"]
    numeric = []
    for col in results:
        columns[header(col)] = table[col].map(significant) if col != "encode_iqr_ms" else table[col]
        numeric.append(header(col))
    frame = pd.DataFrame(columns)
    fixed = _fixed(table, ident)
    caption = f"{study}: {len(table)} configurations" + (f"; fixed: {fixed}" if fixed else "") + \
        f". Numbers to {SIGNIFICANT} significant figures; latency per image, after warm-up."
    keys = [c for c in frame.columns if c not in numeric]
    per_part = max(2, MAX_COLUMNS - len(keys))
    parts = [numeric[i:i + per_part] for i in range(0, len(numeric), per_part)] or [[]]
    if len(parts) == 1:
        return _tabular(frame, numeric, caption, f"tab:{study}")
    return "\n".join(
        _tabular(frame[keys + part], part, f"{caption} Part {k} of {len(parts)}.", f"tab:{study}-{k}")
        for k, part in enumerate(parts, start=1))


def mme_paper_frame(mme_rows: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """One row per run (labelled by its configuration), the MME subtask scores in the official
    order with each group's total after its subtasks; a total only when its group is complete."""
    labels = dict(zip(table["run_id"], config_labels(table), strict=True)) if "run_id" in table else {}
    rows = {}
    for run_id, grp in mme_rows.groupby("run_id", sort=False):
        scores = dict(zip(grp["category"], grp["score"], strict=True))
        row: dict[str, float] = {}
        for group, names in GROUPS.items():
            row.update({n: scores.get(n, float("nan")) for n in names})
            complete = all(n in scores for n in names)
            row[f"{group} total"] = sum(scores[n] for n in names) if complete else float("nan")
        rows[labels.get(run_id, str(run_id))] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def mme_paper_table(mme_rows: pd.DataFrame, table: pd.DataFrame, study: str) -> str:
    frame = mme_paper_frame(mme_rows, table)
    keep = [c for c in frame.columns if frame[c].notna().any()]
    frame = frame[keep]
    shown = pd.DataFrame({"configuration": frame.index})
    headers, numeric = ["Configuration"], []
    groups: list[tuple[str, int]] = [("", 1)]
    for group, names in GROUPS.items():
        cols = [c for c in [*names, f"{group} total"] if c in frame.columns]
        for c in cols:
            shown[c] = frame[c].map(significant).to_numpy()
            headers.append("Total" if c.endswith(" total") else c.replace("_", " "))
            numeric.append(c)
        if cols:
            groups.append((group, len(cols)))
    caption = (f"{study}: MME scores (accuracy + accuracy+, max 200 per subtask) in the official subtask order; "
               "a group total only when all its subtasks were scored.")
    return _tabular(shown, numeric, caption, f"tab:{study}-mme", groups, headers)


def benchmarks_paper_table(bench: pd.DataFrame, study: str) -> str:
    """The `<study>_benchmarks` table for a paper (harness/reporting/benchmark_table.py): family and arm,
    then per benchmark its main score, visual tokens and prefill p50 under the benchmark's name;
    two benchmarks per part, so a part fits a page."""
    labels = benchmark_labels(list(bench.columns))
    keys = pd.DataFrame({"Family": bench["family"].astype(str), "Arm": bench["arm"].astype(str)})
    per_part = max(1, (MAX_COLUMNS - len(keys.columns)) // (1 + len(MEASURES)))
    names = list(labels)
    caption = (f"{study}: each benchmark's main score, mean visual tokens per image and prefill p50 (ms) per "
               f"family and arm ({len(bench)} arms). Numbers to {SIGNIFICANT} significant figures.")
    parts = [names[i:i + per_part] for i in range(0, len(names), per_part)]
    out = []
    for k, part in enumerate(parts, start=1):
        frame, headers, numeric = keys.copy(), ["Family", "Arm"], []
        groups: list[tuple[str, int]] = [("", len(keys.columns))]
        for score in part:
            bench_name = score.removeprefix("score:")
            cols = [score, *(f"{m}:{bench_name}" for m in MEASURES if f"{m}:{bench_name}" in bench)]
            for col, head in zip(cols, ("Score", "Tokens", "Prefill (ms)"), strict=False):
                frame[col] = bench[col].map(significant)
                headers.append(head)
                numeric.append(col)
            groups.append((labels[score], len(cols)))
        suffix = f" Part {k} of {len(parts)}." if len(parts) > 1 else ""
        label = f"tab:{study}-benchmarks" + (f"-{k}" if len(parts) > 1 else "")
        out.append(_tabular(frame, numeric, caption + suffix, label, groups, headers))
    return "\n".join(out)
