"""Question rows and the run row's answer summary (what every later tool reads).

One `kind="question"` row per question: `question_id` (the benchmark's unit of scoring; MME's two
questions of an image share it), `question_index`, `category`, `question`, `answer` (ground truth;
a JSON list where there are many), `options` and `fields` (JSON, where the question has them),
`prompt` (the text given to the tokenizer, the image placeholder once), `response`, `prediction`
(the benchmark's parse of the response), `visual_tokens`, `prompt_tokens`, `prefill_ms`,
`decode_ms`, `new_tokens`, `kv_cache_mb`, `prefix_tokens_shared` (prompt tokens prefilled once
for the image's questions; the shared prefill's time is divided among them, docs/vlm_speed.md).
The run row gets the benchmark's scores
(`Benchmark.summarize`, harness/benchmarks/); with any failed question it says the score is
incomplete (`answers_complete=False`) and scores only the question ids with no failed question.
MME's `mme_complete` is true only when all 1187 images (2374 questions) were answered: a subset
(`categories`, `limit`) or a copy that lacks images is never a complete MME score.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from harness.benchmarks.base import Benchmark
from harness.metrics.latency import summarize_ms
from harness.types import Question, Record
from harness.vlm.base import Answer


def _question_values(benchmark: Benchmark, image_id: str, index: int, question: Question,
                     category: str | None) -> dict[str, Any]:
    values = {"question_id": question.id, "question_index": index, "category": question.category or category,
              "question": question.text, "answer": benchmark.answer_text(question)}
    if question.options:
        values["options"] = json.dumps(question.options)
    if question.fields:
        values["fields"] = json.dumps(question.fields, default=str)
    return values


def question_record(identity: dict[str, Any], image_id: str, category: str | None, index: int, question: Question,
                    benchmark: Benchmark, answer: Answer, prediction: str) -> Record:
    values = {
        **_question_values(benchmark, image_id, index, question, category),
        "prompt": answer.prompt, "response": answer.response, "prediction": prediction,
        "visual_tokens": answer.visual_tokens, "prompt_tokens": answer.prompt_tokens,
        "new_tokens": answer.new_tokens, "prefill_ms": answer.prefill_ms, "decode_ms": answer.decode_ms,
        "kv_cache_mb": answer.kv_cache_mb, "prefix_tokens_shared": answer.prefix_tokens_shared,
    }
    return Record(kind="question", identity=identity, image_id=image_id, values=values)


def question_error(identity: dict[str, Any], image_id: str, category: str | None, index: int, question: Question,
                   benchmark: Benchmark, status: str, message: str) -> Record:
    values = _question_values(benchmark, image_id, index, question, category)
    return Record(kind="question", identity=identity, image_id=image_id, status=status, message=message,
                  values=values)


def answer_summary(records: list[Record], identity: dict[str, Any],
                   benchmark: Benchmark | None) -> tuple[dict[str, Any], list[Record]]:
    """Run-row values and `kind="metric"` rows from the question rows (nothing when there
    are none): the benchmark's scores of the question ids whose questions were all answered."""
    rows = [r for r in records if r.kind == "question"]
    if not rows or benchmark is None:
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
    scored = [v for v in ok if v["question_id"] not in failed]
    if not scored:
        return out, []
    values, metrics = benchmark.summarize(benchmark.frame(scored), complete=not failed)
    out.update(values)
    return out, [Record("metric", identity, values={"metric": name, "value": float(value), "category": category})
                 for name, value, category in metrics]
