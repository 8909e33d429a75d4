"""MMBench (dev) scored as VLMEvalKit scores it without a judge model: the option is inferred from
the response by exact matching (`vlmeval/utils/matching_util.py` `can_infer`), and under circular
evaluation a question counts only when every rotation of its options is answered right
(`vlmeval/dataset/utils/multiple_choice.py` `mcq_circular_eval`; rotations as `vlmeval/tools.py`
`CIRCULAR` makes them). Facts, worked examples and lmms-eval's variant: docs/benchmark_scoring.md §5.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

import pandas as pd

REQUIRED = ("question_id", "category", "answer", "prediction", "index", "circular_index")
# What `can_infer` returns for a refusal, and what exact matching records when nothing is inferred
# (the toolkit would ask a judge model instead): never a right answer.
NO_OPTION = "Z"
REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
            "I'm sorry, but without the image provided", "Cannot determine the answer")
API_FAILURE = "Failed to obtain answer via API"
# Characters `can_infer_option` turns into spaces before splitting the response into words.
WORD_SEPARATORS = ".()[],:;!*#{}"
# "The correct answer is **B**", "the answer is c": only A-D, any case (the pattern is (?i)).
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def is_absent(value: Any) -> bool:
    """None or NaN: how the data marks a missing option or hint."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def options_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The question's options, letter -> text, in letter order, absent ones (None/NaN) dropped.
    `fields["options"]` is a dict or its JSON."""
    options = fields["options"]
    if isinstance(options, str):
        options = json.loads(options)
    return {letter: options[letter] for letter in string.ascii_uppercase
            if letter in options and not is_absent(options[letter])}


def infer_option(response: str, letters: str) -> str | None:
    """`can_infer_option`: a letter standing as a word of the response. Separators become spaces;
    when exactly one option letter is a word and it is among the last 4 words, that letter; when
    none is and "Z" is a word, "Z"; else "answer is X" anywhere; refusals give "Z"."""
    if API_FAILURE in response:
        return None
    if any(refusal in response for refusal in REFUSALS):
        return NO_OPTION
    words = response
    for char in WORD_SEPARATORS:
        words = words.replace(char, " ")
    words_list = words.split()
    named = [letter for letter in letters if letter in words_list]
    if len(named) == 1 and words_list.index(named[0]) > len(words_list) - 5:
        return named[0]
    if not named and NO_OPTION in words_list:
        return NO_OPTION
    match = _ANSWER_IS.search(response)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    return None


def infer_text(response: str, options: Mapping[str, Any]) -> str | None:
    """`can_infer_text`: the one option whose text (lower-cased) occurs in the lower-cased response,
    unless the response is longer than twice all option texts together."""
    text = response.lower()
    if len(text) > 2 * sum(len(str(value)) for value in options.values()):
        return None
    found = [letter for letter, value in options.items() if str(value).lower() in text]
    return found[0] if len(found) == 1 else None


def parse(response: str | None, fields: Mapping[str, Any]) -> str:
    """The option letter VLMEvalKit's exact matching extracts (`can_infer`: a letter first, else an
    option's text), or "Z" when it finds none (refusals included)."""
    options = options_of(fields)
    text = str(response) if response is not None else ""
    return infer_option(text, "".join(options)) or infer_text(text, options) or NO_OPTION


def is_abnormal(fields: Mapping[str, Any]) -> bool:
    """`CIRCULAR`'s questions that are not rotated: an option naming more than one option letter as
    a word (letters and spaces kept, everything else a space), an option that is a substring of
    "ABC...Z" (e.g. "B"), fewer than 2 options, or an answer that is not one option letter."""
    options = options_of(fields)
    for value in options.values():
        text = "".join(c if c in string.ascii_letters or c == " " else " " for c in str(value))
        if len({word for word in text.split() if word in options}) > 1:
            return True
    if any(str(value) in string.ascii_uppercase for value in options.values()):
        return True
    answer = str(fields.get("answer", ""))
    return len(options) < 2 or len(answer) != 1 or answer not in options


def circular_variants(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rotated copies of one question, as VLMEvalKit's `CIRCULAR` makes them: with k options,
    copy i (0..k-1) shows at letter m the original option (m + i) mod k, so its answer letter moves
    from a to (a - i) mod k; each copy gets `circular_index` i and keeps the other fields (`index`
    stays the original question's). Questions `is_abnormal` flags are not rotated (one copy).
    Option letters must run A, B, C... without gaps."""
    options = options_of(fields)
    letters = string.ascii_uppercase[: len(options)]
    if "".join(options) != letters:
        raise ValueError(f"MMBench options must be lettered A, B, C... without gaps; got {', '.join(options)}")
    if is_abnormal(fields):
        return [{**fields, "options": options, "circular_index": 0}]
    texts = list(options.values())
    size = len(texts)
    answer = letters.index(str(fields["answer"]))
    return [{**fields, "circular_index": shift,
             "options": {letters[m]: texts[(m + shift) % size] for m in range(size)},
             "answer": letters[(answer - shift) % size]}
            for shift in range(size)]


def score(frame: pd.DataFrame) -> dict[str, float]:
    """Circular accuracy in percent: a question (`index`) is right when every one of its rows
    (rotations) has `prediction` (a `parse()` output) equal to that row's `answer`. Reports
    `circular_accuracy`, `circular_accuracy/<category>`, `vanilla_accuracy` (the unrotated rows,
    `circular_index` 0, alone), `n_questions` and `n_rows`. A missing prediction (None/NaN) is wrong."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"MMBench scoring needs columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    if frame.empty:
        raise ValueError("MMBench scoring got no predictions")
    right = frame["prediction"].fillna("").astype(str) == frame["answer"].astype(str)
    per_question = right.groupby(frame["index"]).all()
    category = frame.groupby("index")["category"].first()
    first = frame["circular_index"] == 0
    result = {
        "circular_accuracy": 100.0 * float(per_question.mean()),
        "vanilla_accuracy": 100.0 * float(right[first].mean()) if first.any() else float("nan"),
        "n_questions": float(per_question.size),
        "n_rows": float(len(frame)),
    }
    for name, hits in per_question.groupby(category):
        result[f"circular_accuracy/{name}"] = 100.0 * float(hits.mean())
    return result
