"""ChartQA prompts and relaxed accuracy against a transcription of lmms-eval's code
(tests/references/chartqa_reference.py) and hand-worked cases."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.benchmarks.chartqa import prompts, scoring
from tests.references import chartqa_reference as ref

_numbers = st.sampled_from(["20", "0", "0.0", "12%", "0.12", "-3.5", "1e3", "1,000", "1_000", "inf", "nan",
                            "5%%", "%", "100", "19", "21", "21.1", "1000", "7.0"])
_words = st.sampled_from(["Yes", "yes", "No", "Brazil", "brazil ", "", " ", "2019", "2019.0"])
_free = st.text(alphabet=st.sampled_from([*"0129.-%e ,Aa_"]), max_size=8)
_answer = st.one_of(_numbers, _words, _free)


@settings(max_examples=600, deadline=None)
@given(response=_answer, target=_answer, kind=st.sampled_from(["human_test", "augmented_test"]))
def test_relaxed_correctness_matches_lmms_eval(response, target, kind):
    expected = ref.process_results_with_strip({"type": kind, "answer": target}, response)
    assert float(scoring.relaxed_correctness(scoring.parse(response, {}), target)) == expected["relaxed_overall"]


@settings(max_examples=400, deadline=None)
@given(target=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda x: abs(x) > 1e-9),
       ratio=st.floats(min_value=0.9, max_value=1.1))
def test_numbers_near_the_tolerance_match_lmms_eval(target, ratio):
    prediction, answer = repr(target * ratio), repr(target)
    assert scoring.relaxed_correctness(prediction, answer) == ref.relaxed_correctness(prediction, answer)


@pytest.mark.parametrize(("prediction", "target", "right"), [
    ("21", "20", True),        # |21 - 20| / 20 = 0.05: on the boundary, kept
    ("19", "20", True),
    ("21.1", "20", False),     # 0.055
    ("12%", "0.12", True),     # a percent sign divides by 100
    ("5", "5%", False),        # 5 against 0.05
    ("0.0", "0", False),       # target 0: no relative change, so strings compared: "0.0" != "0"
    ("YES", "Yes", True),      # case ignored
    ("Brazil.", "Brazil", False),  # anything else must match exactly
    ("1,000", "1000", False),  # float() does not read a thousands comma
    ("1e3", "1000", True),     # ... but it reads an exponent
])
def test_hand_worked_relaxed_correctness(prediction, target, right):
    assert scoring.relaxed_correctness(prediction, target) is right
    assert ref.relaxed_correctness(prediction, target) is right


def test_tolerance_is_a_parameter():
    """22 vs 20 is a 10 % change: wrong at 5 %, right at 10 %."""
    assert not scoring.relaxed_correctness("22", "20")
    assert scoring.relaxed_correctness("22", "20", tolerance=0.10)


def test_prompts_match_lmms_eval():
    doc = {"question": "How many bars are there?"}
    assert prompts.PROMPTS["lmms_eval"](doc) == ref.chartqa_doc_to_text(doc, ref.CHARTQA_DEFAULT_KWARGS)
    assert prompts.PROMPTS["lmms_eval"](doc) == "How many bars are there?\nAnswer the question with a single word."
    assert prompts.PROMPTS["vlmevalkit"](doc) == (
        "How many bars are there?\nAnswer the question using a single word or phrase.")
    assert prompts.MAX_NEW_TOKENS["lmms_eval"] == 16


def test_score_frame_reports_the_splits():
    """Human: 2 of 3 right (66.67 %); augmented: 1 of 1 (100 %); overall 3 of 4 (75 %)."""
    frame = pd.DataFrame({
        "question_id": [1, 2, 3, 4],
        "category": ["human_test", "human_test", "human_test", "augmented_test"],
        "answer": ["20", "Yes", "5", "0.12"],
        "prediction": [scoring.parse(r, {}) for r in [" 20.5\n", "yes", "6", "12%"]],
    })
    result = scoring.score(frame)
    assert result["relaxed_overall"] == pytest.approx(75.0)
    assert result["relaxed_human_split"] == pytest.approx(200 / 3)
    assert result["relaxed_augmented_split"] == pytest.approx(100.0)
    only_human = scoring.score(frame.iloc[:3])
    assert "relaxed_augmented_split" not in only_human


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="missing category"):
        scoring.score(pd.DataFrame({"question_id": [1], "answer": ["1"], "prediction": ["1"]}))


def test_missing_prediction_is_the_empty_answer():
    """lmms-eval reads a None response as "": wrong here, and the row still counts."""
    frame = pd.DataFrame({"question_id": [1, 2], "category": "human_test", "answer": ["20", "20"],
                          "prediction": ["20", None]})
    assert scoring.score(frame)["relaxed_overall"] == 50.0
