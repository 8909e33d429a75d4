"""Question rows and the run row's answer summary (what every later tool reads).

One `kind="question"` row per question: `question_id` (the image key; MME's two questions of an
image share it), `category`, `question`, `answer` (ground truth), `prompt` (the text given to
the tokenizer, the image placeholder once), `response`, `prediction`, `visual_tokens`,
`prompt_tokens`, `prefill_ms`, `decode_ms`, `new_tokens`, `kv_cache_mb`, `prefix_tokens_shared` (prompt
tokens prefilled once for the image's questions; the shared prefill's time is divided among
them, docs/vlm_speed.md). The run row gets MME's
official scores (`harness.mme.scoring.score`) when the categories are MME's, else the same
yes/no accuracy without the MME totals; with any failed question it says the score is
incomplete (`answers_complete=False`) and scores only images whose two questions were answered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.latency import summarize_ms
from harness.mme.scoring import score
from harness.mme.subtasks import SUBTASKS
from harness.types import Record
from harness.vlm.base import Answer


def question_record(identity: dict[str, Any], image_id: str, category: str | None, index: int, question: str,
                    truth: str, answer: Answer) -> Record:
    values = {
        "question_id": image_id, "question_index": index, "category": category, "question": question,
        "answer": truth, "prompt": answer.prompt, "response": answer.response, "prediction": answer.prediction,
        "visual_tokens": answer.visual_tokens, "prompt_tokens": answer.prompt_tokens,
        "new_tokens": answer.new_tokens, "prefill_ms": answer.prefill_ms, "decode_ms": answer.decode_ms,
        "kv_cache_mb": answer.kv_cache_mb, "prefix_tokens_shared": answer.prefix_tokens_shared,
    }
    return Record(kind="question", identity=identity, image_id=image_id, values=values)


def question_error(identity: dict[str, Any], image_id: str, category: str | None, index: int, question: str,
                   truth: str, status: str, message: str) -> Record:
    values = {"question_id": image_id, "question_index": index, "category": category, "question": question,
              "answer": truth}
    return Record(kind="question", identity=identity, image_id=image_id, status=status, message=message,
                  values=values)


def answer_summary(records: list[Record], identity: dict[str, Any]) -> tuple[dict[str, Any], list[Record]]:
    """Run-row values and `kind="metric"` rows from the question rows (nothing when there
    are none). Metric rows follow `harness.mme_baseline`'s: per category `mme_score`,
    `mme_acc`, `mme_acc_plus` (MME) or `yes_no_score` (other datasets), totals without one."""
    rows = [r for r in records if r.kind == "question"]
    if not rows:
        return {}, []
    ok = [r.values for r in rows if r.status == "ok"]
    failed = {r.values["question_id"] for r in rows if r.status != "ok"}
    out: dict[str, Any] = {
        "n_questions": len(rows), "n_question_errors": len(rows) - len(ok), "answers_complete": not failed,
        "new_tokens_mean": float(np.mean([v["new_tokens"] for v in ok])) if ok else float("nan"),
        "prompt_tokens_mean": float(np.mean([v["prompt_tokens"] for v in ok])) if ok else float("nan"),
        "kv_cache_mb_max": float(max(v["kv_cache_mb"] for v in ok)) if ok else float("nan"),
    }
    out.update(summarize_ms([v["prefill_ms"] for v in ok], "prefill"))
    out.update(summarize_ms([v["decode_ms"] for v in ok], "decode_answer"))
    frame = pd.DataFrame([v for v in ok if v["question_id"] not in failed])
    if not frame.empty:  # whole images only: both questions answered
        frame = frame[frame.groupby("question_id")["question_id"].transform("size") == 2]
    if frame.empty:
        return out, []

    def metric(name: str, value: float, category: str | None = None) -> Record:
        return Record("metric", identity, values={"metric": name, "value": float(value), "category": category})

    metrics: list[Record] = []
    frame = frame.assign(answer=frame["answer"].astype(str), category=frame["category"].astype(str))
    is_mme = set(frame["category"]) <= set(SUBTASKS)
    if is_mme:
        result = score(frame)
        out.update(mme_perception=result["perception"], mme_cognition=result["cognition"], mme_total=result["total"],
                   mme_complete=bool(all(result["complete"].values()) and not failed))
        for name, sub in result["subtasks"].items():
            out.update({f"mme_{name}": sub["score"], f"mme_{name}_acc": sub["acc"],
                        f"mme_{name}_acc_plus": sub["acc_plus"], f"mme_{name}_other": sub["other_num"]})
            metrics += [metric("mme_score", sub["score"], name), metric("mme_acc", sub["acc"], name),
                        metric("mme_acc_plus", sub["acc_plus"], name)]
        metrics += [metric("mme_perception", result["perception"]), metric("mme_cognition", result["cognition"])]
    frame["correct"] = frame["prediction"] == frame["answer"].str.lower()
    for name, group in [(None, frame), *([] if is_mme else frame.groupby("category"))]:
        acc = 100.0 * float(group["correct"].mean())
        acc_plus = 100.0 * float(group.groupby("question_id")["correct"].all().mean())
        metrics.append(metric("yes_no_score", acc + acc_plus, name))
        if name is None:
            out.update(yes_no_acc=acc, yes_no_acc_plus=acc_plus, yes_no_score=acc + acc_plus)
    out["other_answers"] = int((frame["prediction"] == "other").sum())
    return out, metrics
