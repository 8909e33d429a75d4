"""DocVQA prompts and ANLS against a transcription of lmms-eval's code
(tests/references/docvqa_reference.py) and hand-worked numbers."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.benchmarks.docvqa import prompts, scoring
from tests.references import docvqa_reference as ref

_chars = st.text(alphabet=st.sampled_from([*"abcAB 1.-\n\t", "ß", "İ", "ﬁ"]), max_size=14)
_words = st.lists(st.sampled_from(["1996", "1995", "ITC", "itc", "Limited", "  ", "Dr.", "ß", "$12.50"]),
                  max_size=4).map(" ".join)
_text = st.one_of(_chars, _words)


@settings(max_examples=500, deadline=None)
@given(_text, _text)
def test_levenshtein_matches_lmms_eval(a, b):
    assert scoring.levenshtein(a, b) == ref.levenshtein_distance(a, b)


@settings(max_examples=500, deadline=None)
@given(response=_text, answers=st.lists(_text, min_size=1, max_size=4))
def test_anls_matches_lmms_eval(response, answers):
    assert scoring.anls(scoring.parse(response, {}), answers) == ref.score_one(answers, response)


@pytest.mark.parametrize(("prediction", "answers", "expected"), [
    ("1995", ["1996"], 0.75),             # 1 substitution / 4 characters
    ("199", ["1996"], 0.75),              # 1 deletion / 4
    ("19", ["1996"], 0.5),                # 2 / 4 -> 0.5 is not below the threshold: it counts
    ("1", ["1996"], 0.0),                 # 3 / 4 -> 0.25 < 0.5 -> 0
    ("itc limited", ["ITC Limited"], 1.0),  # case does not matter
    ("1995", ["1996", "1995"], 1.0),      # the best answer counts
    ("a b x", ["a  b"], 0.6),             # canonical "a b" vs "a b x": 2 edits over the RAW length 5
    ("", ["abc"], 0.0),                   # 3 / 3
])
def test_hand_worked_anls(prediction, answers, expected):
    assert scoring.anls(prediction, answers) == pytest.approx(expected, abs=1e-15)
    assert ref.score_one(answers, prediction) == pytest.approx(expected, abs=1e-15)


def test_threshold_is_a_parameter():
    """1995 vs 1996 is 0.75: kept under a 0.7 threshold, zeroed under 0.8."""
    assert scoring.anls("1995", ["1996"], threshold=0.7) == pytest.approx(0.75)
    assert scoring.anls("1995", ["1996"], threshold=0.8) == 0.0


def test_prompts_match_lmms_eval_and_vlmevalkit():
    doc = {"question": "What is the date mentioned in this letter?"}
    expected = "What is the date mentioned in this letter?\nAnswer the question using a single word or phrase."
    assert prompts.PROMPTS["lmms_eval"](doc) == ref.docvqa_doc_to_text(doc, ref.DOCVQA_DEFAULT_KWARGS) == expected
    assert prompts.PROMPTS["vlmevalkit"](doc) == expected
    assert prompts.MAX_NEW_TOKENS["lmms_eval"] == 32


def test_score_frame():
    """Q1 0.75, Q2 1.0, Q3 0 -> mean 1.75 / 3 = 58.33 %; category form: (0.75 + 0) / 2 = 37.5 %."""
    frame = pd.DataFrame({
        "question_id": [1, 2, 3], "category": ["form", "table", "form"],
        "answer": [json.dumps(["1996"]), json.dumps(["ITC Limited", "ITC"]), json.dumps(["yes"])],
        "prediction": [scoring.parse(" 1995\n", {}), scoring.parse("itc", {}), scoring.parse("no", {})],
    })
    result = scoring.score(frame)
    assert result["anls"] == pytest.approx(100 * 1.75 / 3)
    assert result["anls/form"] == pytest.approx(37.5)
    assert result["anls/table"] == pytest.approx(100.0)
    assert result["n_questions"] == 3


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="missing answer"):
        scoring.score(pd.DataFrame({"question_id": [1], "category": ["a"], "prediction": ["x"]}))
    with pytest.raises(ValueError, match="at least one"):
        scoring.anls("x", [])


def test_missing_prediction_is_the_empty_answer():
    """lmms-eval reads a None response as "": ANLS 0 against a non-empty answer; the row counts."""
    frame = pd.DataFrame({"question_id": [1, 2], "category": "a", "answer": [json.dumps(["x"])] * 2,
                          "prediction": ["x", None]})
    assert scoring.score(frame)["anls"] == 50.0
