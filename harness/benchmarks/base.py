"""What every benchmark is: how one of its questions becomes a user text under a protocol, how
a response becomes a prediction, and how its question rows become run-row values and metric rows.

A folder's `prompts.py` holds `PROMPTS` (protocol -> function of a question's fields returning the
user text) and `MAX_NEW_TOKENS` (protocol -> the toolkit's limit), optionally `STYLES` (protocol ->
style name -> such a function: the prompts a toolkit's model wrappers build themselves, named after
the wrapper) and `PARSERS` (protocol -> function of the response, where toolkits parse
differently); its `scoring.py` holds `parse(response, fields)` (when there is no `PARSERS`) and
`score(frame) -> {name: value}`. Which style a family asks for is the family's
(`Answerer.toolkit_styles`); the answerer only wraps the user text in its chat template, so the
same question reaches every language model the same way unless its toolkit says otherwise.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from functools import cached_property
from types import ModuleType
from typing import Any, ClassVar

import pandas as pd

from harness.types import Question

# The toolkits' short-answer instruction (lmms-eval's post_prompt, VLMEvalKit's and InternVL's
# suffix for yes/no and short answers).
SHORT_ANSWER = "Answer the question using a single word or phrase."
# Columns of the scoring frame that every benchmark gets (`Benchmark.frame`).
FRAME_COLUMNS = ("question_id", "category", "answer", "prediction")
# VLMEvalKit `Qwen2VLPromptMixin._build_vqa_prompt` (VQA datasets but MMVet and the ChartQAPro /
# ChartMuseum ones): the question as given, then this line in place of the dataset's instruction.
QWEN2_VL_VQA = "\nPlease try to answer the question with short words or phrases if possible."


def qwen2_vl_vqa(fields: Mapping[str, Any]) -> str:
    """The user text of `Qwen2VLPromptMixin` for a VQA question (TextVQA, DocVQA, ChartQA)."""
    return f"{fields['question']}{QWEN2_VL_VQA}"


def metric_name(key: str) -> tuple[str, str | None]:
    """A `score` key as (metric, category): `f1/adversarial` -> (`f1`, `adversarial`)."""
    name, _, category = key.partition("/")
    return name, category or None


class Benchmark:
    """Base class of a benchmark folder (see the module docstring). `task` names the kind of
    question (yes_no, short_answer, multiple_choice: the toolkits' Y/N, VQA and MCQ dataset types);
    `many_answers`: the ground truth is a list (stored as JSON in the `answer` column)."""

    name: ClassVar[str]
    task: ClassVar[str] = "short_answer"
    many_answers: ClassVar[bool] = False
    # The score a paper quotes for the benchmark: the sum of these run-level metrics (as
    # `metric:<name>` columns of a study table), called `main_label`; studies across benchmarks
    # (harness/reporting/benchmark_table.py) read it so each benchmark's headline is said once, here.
    main_metrics: ClassVar[tuple[str, ...]] = ()
    main_label: ClassVar[str] = ""

    def _module(self, name: str) -> ModuleType:
        """The folder's `prompts` or `scoring` module; a folder without it fails in one line."""
        full = f"{type(self).__module__}.{name}"
        try:
            return importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
            raise ValueError(f"benchmark {self.name} has no {name}.py yet (harness/benchmarks/{self.name}/)") from exc

    @cached_property
    def prompts(self) -> ModuleType:
        return self._module("prompts")

    @cached_property
    def scoring(self) -> ModuleType:
        return self._module("scoring")

    # --- protocols ----------------------------------------------------------------------------
    def protocols(self) -> list[str]:
        return list(self.prompts.PROMPTS)

    def check_protocol(self, protocol: str) -> None:
        if protocol not in self.prompts.PROMPTS:
            raise ValueError(f"unknown vlm.protocol {protocol!r} for benchmark {self.name}; valid choices: "
                             f"{', '.join(self.protocols())}")

    def max_new_tokens(self, protocol: str) -> int:
        return int(self.prompts.MAX_NEW_TOKENS[protocol])

    # --- one question ---------------------------------------------------------------------------
    def fields(self, question: Question) -> dict[str, Any]:
        """What a prompt or a parser reads: the toolkits' field names."""
        return {"question": question.text, "answer": question.answer, "answers": list(question.answers),
                "options": dict(question.options), "category": question.category, **question.fields}

    def prompt(self, question: Question, protocol: str, style: str | None = None) -> str:
        """The user text of the question under `protocol` (the image placeholder is the family's):
        the builder of `style` when the benchmark has one for this protocol (a model wrapper's own
        prompt), else the protocol's generic one (what the toolkit gives every other model)."""
        styled = getattr(self.prompts, "STYLES", {}).get(protocol, {})
        build = styled.get(style) if style is not None else None
        return (build or self.prompts.PROMPTS[protocol])(self.fields(question))

    def styles(self, protocol: str) -> list[str]:
        """The named prompt styles this benchmark has under `protocol` (may be none)."""
        return list(getattr(self.prompts, "STYLES", {}).get(protocol, {}))

    def parse(self, response: str, question: Question, protocol: str) -> str:
        """The prediction the toolkit extracts from the response."""
        parsers = getattr(self.prompts, "PARSERS", None)
        if parsers is not None:
            return parsers[protocol](response)
        return self.scoring.parse(response, self.fields(question))

    def answer_text(self, question: Question) -> str:
        """The `answer` column: the answer, or all of them as a JSON list."""
        return json.dumps(list(question.answers)) if self.many_answers else question.answer

    # --- a run's question rows ------------------------------------------------------------------
    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """The scoring frame of answered question rows: the record columns plus each row's
        `fields` (JSON) as columns and `options` as a dict."""
        frame = pd.DataFrame(rows)
        extra = [json.loads(f) if isinstance(f, str) and f else {} for f in frame.get("fields", [None] * len(frame))]
        for key in sorted({k for e in extra for k in e} - set(frame.columns)):
            frame[key] = [e.get(key) for e in extra]
        if "options" in frame.columns:
            frame["options"] = [json.loads(o) if isinstance(o, str) and o else {} for o in frame["options"]]
        return frame

    def summarize(self, frame: pd.DataFrame, complete: bool = True,
                  ) -> tuple[dict[str, Any], list[tuple[str, float, str | None]]]:
        """Run-row values (`<benchmark>_<metric>[_<category>]`) and metric rows (name, value,
        category) of the scored frame; `score` keys `metric/category` are per category.
        `complete`: every question was answered (a benchmark may say so in its values)."""
        values: dict[str, Any] = {}
        metrics: list[tuple[str, float, str | None]] = []
        for key, value in self.scoring.score(frame).items():
            metric, category = metric_name(key)
            column = f"{self.name}_{metric}" + (f"_{category}" if category else "")
            values[column] = float(value)
            metrics.append((f"{self.name}_{metric}", float(value), category))
        return values, metrics
