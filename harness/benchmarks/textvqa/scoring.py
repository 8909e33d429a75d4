"""TextVQA's VQA accuracy as lmms-eval scores it (`tasks/textvqa/utils.py` with the EvalAI answer
processor of `tasks/_task_utils/vqa_eval_metric.py`), which is the official VQA evaluation's
normalisation (GT-Vision-Lab/VQA `vqaEval.py`) applied to every answer. Facts, differences from
the official script and VLMEvalKit, worked examples: docs/benchmark_scoring.md §2.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.benchmarks.frames import per_question, percent_by_category

# The EvalAI / VQA contraction table: a word written without its apostrophe -> the word with it.
# Keys with capitals ("Im", "Ive", "Id've", "I'dve") never match (words are lower-cased first);
# "somebody'd" -> "somebodyd" is the original's typo. Both kept as published.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll",
    "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll",
    "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# lmms-eval's pattern is `(?!<=\d)(\.)(?!\d)`: the first group is a look-AHEAD for "<=digit", which
# can never hold where a "." stands, so a period goes unless a digit follows ("3." loses it).
_PERIOD = re.compile(r"\.(?!\d)")
# `PERIOD_STRIP.sub("", text, re.UNICODE)` passes re.UNICODE (32) as the count: at most 32 go.
_PERIOD_COUNT = int(re.UNICODE)


def _strip_punctuation(text: str) -> str:
    """Each mark is deleted when the text has it beside a space, else replaced by a space (the test
    looks at the text as it was before any mark was handled); then periods not before a digit go.
    The original also deletes every mark when the text has a digit-comma-digit; commas are gone
    by then in lmms-eval (see `normalize_answer`), so that rule never fires and is left out."""
    out = text
    for mark in PUNCTUATION:
        out = out.replace(mark, "" if (mark + " " in text or " " + mark in text) else " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def _digits_and_articles(text: str) -> str:
    """Lower-case words; number words 0-10 ("none" too) -> digits; articles dropped; contractions
    restored."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def normalize_answer(text: str) -> str:
    """lmms-eval's `EvalAIAnswerProcessor`: lower-case, delete `,` and `?`, split `'s` off its
    word, newlines and tabs to spaces, strip, then the VQA punctuation and digit/article rules."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_and_articles(_strip_punctuation(text))


def parse(response: str | None, fields: Mapping[str, Any] | None = None) -> str:
    """The prediction lmms-eval scores and submits: the stripped response, normalised."""
    return normalize_answer((response or "").strip())


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of a `parse()`d prediction against the human answers (10 in TextVQA):
    the mean over leaving each answer out of min(1, matches among the others / 3)."""
    if not answers:
        raise ValueError("VQA accuracy needs at least one ground-truth answer")
    normalized = [normalize_answer(answer) for answer in answers]
    per_subset = []
    for left_out in range(len(normalized)):
        matches = sum(1 for i, answer in enumerate(normalized) if i != left_out and answer == prediction)
        per_subset.append(min(1, matches / 3))
    return statistics.mean(per_subset)


def answers_list(value: Any) -> list[str]:
    """The `answer` cell: a JSON list of strings (or already a list)."""
    answers = json.loads(value) if isinstance(value, str) else list(value)
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"answer must be a JSON list of strings; got {value!r}")
    return answers


def score(frame: pd.DataFrame) -> dict[str, float]:
    """`accuracy`: 100 x the mean VQA accuracy (lmms-eval's `exact_match` mean, in percent);
    `accuracy/<category>` for each category present; `n_questions`. `prediction` holds `parse()`
    outputs (a missing one, None/NaN, is the empty
    answer, as lmms-eval reads a None response), `answer` the JSON list of human answers."""
    values = per_question(frame, "TextVQA", lambda p, a: vqa_accuracy(p, answers_list(a)))
    return percent_by_category(values, frame, "accuracy")
