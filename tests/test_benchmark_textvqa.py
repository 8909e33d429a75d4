"""TextVQA prompts and scoring against a transcription of lmms-eval's code
(tests/references/textvqa_reference.py) and hand-worked numbers."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.benchmarks.textvqa import prompts, scoring
from tests.references import textvqa_reference as ref

# Words and marks that exercise every rule: numbers, articles, contractions, 's, periods, commas.
_TOKENS = ["the", "a", "an", "one", "Two", "ten", "none", "dont", "isnt", "Im", "it's", "coca", "cola",
           "3", "3.5", "1,000", "no.", "yes", "Stop", "U.S.A.", "e-mail", "(tm)", "x/y", "?", "!", ",",
           ".", "-", "'s", "'", '"', "\n", "\t", "  ", "ow's'at", "a.m.", "..."]
_text = st.lists(st.sampled_from(_TOKENS), max_size=8).map(lambda ws: "".join(
    w if i % 3 == 0 else " " + w for i, w in enumerate(ws)))
_free_text = st.text(alphabet=st.sampled_from([*"aAbB01 .,;/-?!'\"\n\tsé_@", "ß", "İ"]), max_size=30)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_text, _free_text))
def test_normalisation_matches_lmms_eval(text):
    assert scoring.normalize_answer(text) == ref.EvalAIAnswerProcessor()(text)


@settings(max_examples=400, deadline=None)
@given(response=st.one_of(_text, _free_text),
       answers=st.lists(st.one_of(st.sampled_from(["two", "2", "the 2", "Two.", "coca cola", "coca-cola"]), _text),
                        min_size=1, max_size=10))
def test_accuracy_matches_lmms_eval(response, answers):
    expected = ref.process_results_with_strip({"question_id": 1, "answers": copy.copy(answers)}, response)
    prediction = scoring.parse(response, {})
    assert prediction == expected["submission"]["answer"]
    assert scoring.vqa_accuracy(prediction, answers) == expected["exact_match"]


@pytest.mark.parametrize(("raw", "normalised"), [
    ("The Two dogs.", "2 dogs"),        # article dropped, number word -> digit, final period deleted
    ("3.", "3"),                        # lmms-eval's period rule deletes a period after a digit too
    ("3.5", "3.5"),                     # ... but not one before a digit
    ("dont", "don't"),                  # contraction restored
    ("coca-cola", "coca cola"),         # '-' not beside a space -> a space
    ("coca - cola", "coca cola"),       # '-' beside a space -> deleted (the double space then splits away)
    ("It's", "it 's"),                  # 's split off its word
    ("1,000", "1000"),                  # commas deleted before anything else
    ("  Yes!\n", "yes"),
])
def test_hand_worked_normalisation(raw, normalised):
    assert scoring.normalize_answer(raw) == normalised
    assert ref.EvalAIAnswerProcessor()(raw) == normalised


def test_hand_worked_accuracy():
    """Ten answers. With 2 equal to the prediction: leaving out one of those 2 leaves 1 match (1/3),
    leaving out any of the other 8 leaves 2 (2/3): (2 x 1/3 + 8 x 2/3) / 10 = 18/30 = 0.6.
    With 3: 3 x 2/3 + 7 x 1 = 9 -> 0.9. With 4 or more every subset has >= 3 matches -> 1.
    With 1: 9 subsets hold it (1/3 each) -> 9/30 = 0.3."""
    others = ["x", "y", "z", "u", "v", "w", "q", "r", "s", "t"]
    for n, expected in [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]:
        answers = ["Two"] * n + others[: 10 - n]
        assert scoring.vqa_accuracy(scoring.parse(" two. ", {}), answers) == pytest.approx(expected, abs=1e-15)


def test_prompts_match_lmms_eval_and_vlmevalkit():
    doc = {"question": "what is the Brand of this CAMERA?"}
    assert prompts.PROMPTS["lmms_eval"](doc) == ref.textvqa_doc_to_text(doc, ref.TEXTVQA_DEFAULT_KWARGS)
    assert prompts.PROMPTS["lmms_eval"](doc) == (
        "What is the brand of this camera?\nAnswer the question using a single word or phrase.")
    assert prompts.PROMPTS["vlmevalkit"](doc) == (
        "what is the Brand of this CAMERA?\nAnswer the question using a single word or phrase.")
    assert set(prompts.MAX_NEW_TOKENS) == set(prompts.PROMPTS)


def test_score_frame():
    """Question 1: 3 of 10 answers match -> 0.9; question 2: none -> 0; mean 45 %.
    Per category: a = 90 %, b = 0 %."""
    answers = ["nike"] * 3 + ["adidas"] * 7
    frame = pd.DataFrame({
        "question_id": [1, 2], "category": ["a", "b"],
        "answer": [json.dumps(answers), json.dumps(["red"] * 10)],
        "prediction": [scoring.parse("Nike.", {}), scoring.parse("blue", {})],
    })
    result = scoring.score(frame)
    assert result["accuracy"] == pytest.approx(45.0)
    assert result["accuracy/a"] == pytest.approx(90.0)
    assert result["accuracy/b"] == 0.0
    assert result["n_questions"] == 2


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="missing prediction"):
        scoring.score(pd.DataFrame({"question_id": [1], "category": ["a"], "answer": ['["x"]']}))
    with pytest.raises(ValueError, match="JSON list of strings"):
        scoring.answers_list('{"a": 1}')
    with pytest.raises(ValueError, match="at least one"):
        scoring.vqa_accuracy("x", [])


def test_missing_prediction_is_the_empty_answer():
    """lmms-eval reads a None response as "": accuracy 0 against real answers; the row counts."""
    frame = pd.DataFrame({"question_id": [1, 2], "category": "a", "answer": [json.dumps(["x"] * 10)] * 2,
                          "prediction": ["x", float("nan")]})
    assert scoring.score(frame)["accuracy"] == 50.0
