"""What a run lost, judged from its rows alone (in memory or read back, so that a resumed run is
judged as its run was): images and questions that failed, against `max_error_fraction`.

A question that failed (`error:answer`, an allocation failure, a template that cannot be applied
or has no image placeholder, or the error of its image) counts like an image that failed; each
cause is said once, with how many rows it took and the first message, so that 2,374 identical
failures make one line, not 2,374 (docs/guarantees.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def causes(statuses: Sequence[str], messages: Sequence[str]) -> str:
    """`error:answer x48 (first: ValueError: ...); error:decode x2 (first: ...)`: each failure
    status once, in order of first appearance, with its count and its first message."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for status, message in zip(statuses, messages, strict=True):
        counts[status] = counts.get(status, 0) + 1
        first.setdefault(status, " ".join(str(message or "").split()))
    return "; ".join(f"{s} x{n} (first: {first[s]})" if first[s] else f"{s} x{n}" for s, n in counts.items())


def unanswered(statuses: Sequence[str], messages: Sequence[str]) -> str:
    """Why a run that had questions answered none of them ("" when it answered one, or had none):
    how many failed and each cause once."""
    if not statuses or any(s == "ok" for s in statuses):
        return ""
    return f"all {len(statuses)} questions failed: {causes(statuses, messages)}"


def lost(records: pd.DataFrame, max_error_fraction: float) -> tuple[str, str]:
    """(`lost_images` or `lost_answers`, why) when more images, or more questions, failed than
    `max_error_fraction` allows; ("", "") when neither did. Failed images are listed one line
    each; failed questions by cause."""
    if records.empty or "kind" not in records:
        return "", ""
    parts, status = [], ""
    images = records[records["kind"] == "image"]
    bad = images[images["status"] != "ok"]
    if len(bad) and len(bad) / len(images) > max_error_fraction:
        status = "lost_images"
        parts.append(f"{len(bad)} of {len(images)} images failed (max_error_fraction={max_error_fraction}):\n"
                     + "\n".join(f"  {r.image_id}: {r.status} {r.message}" for r in bad.itertuples()))
    questions = records[records["kind"] == "question"]
    failed = questions[questions["status"] != "ok"]
    if len(failed) and len(failed) / len(questions) > max_error_fraction:
        status = status or "lost_answers"
        parts.append(f"{len(failed)} of {len(questions)} questions failed (max_error_fraction={max_error_fraction}): "
                     + causes(failed["status"].tolist(), failed["message"].tolist()))
    return status, "\n".join(parts)


def failure_lines(records: pd.DataFrame) -> str:
    """Every failed image and question row, one line each (a failed run's `error.txt`)."""
    if records.empty or "status" not in records:
        return ""
    bad = records[records["kind"].isin(["image", "question"]) & (records["status"] != "ok")]
    index = bad["question_index"] if "question_index" in bad else pd.Series(index=bad.index, dtype=object)
    return "\n".join(
        f"{kind} {image_id}{'' if pd.isna(k) or kind != 'question' else f' #{int(k)}'}: {status} {message}"
        for kind, image_id, k, status, message in zip(bad["kind"], bad["image_id"], index, bad["status"],
                                                      bad["message"], strict=True))
