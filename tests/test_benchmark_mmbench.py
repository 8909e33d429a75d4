"""MMBench prompts, option matching and circular evaluation against a transcription of VLMEvalKit's
and lmms-eval's code (tests/references/mmbench_reference.py) and hand-worked cases."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.benchmarks.mmbench import prompts, scoring
from tests.references import mmbench_reference as ref
from tests.references import vlmevalkit_prompts_reference as vlmevalkit

LETTERS = "ABCDE"
_option_text = st.sampled_from(["cat", "dog", "a dog", "A cat", "bird", "fish", "B", "A and B", "C or D",
                                "red (A)", "none of these", "2", "12", "the cat"])
_hint = st.sampled_from([None, math.nan, "", "nan", "Look at the image."])


@st.composite
def _questions(draw):
    size = draw(st.integers(min_value=2, max_value=5))
    texts = draw(st.lists(_option_text, min_size=size, max_size=size))
    return {"question": draw(st.sampled_from(["What animal is this?", "Which one?"])),
            "options": dict(zip(LETTERS, texts, strict=False)),
            "answer": draw(st.sampled_from(LETTERS[:size])),
            "hint": draw(_hint)}


_tokens = st.sampled_from(["A", "B", "C", "D", "E", "Z", "(B)", "C.", "D:", "**A**", "b", "The", "answer", "is",
                           "correct", "the answer is b", "Answer: C", "cat", "dog", "a dog", "I", "think",
                           "because", "it", "shows", "a", "fish", "Cannot determine the answer", "[E]", ",", "!"])
_responses = st.lists(_tokens, max_size=14).map(" ".join)


def _row(question: dict, **extra) -> dict:
    """The question as a VLMEvalKit/lmms-eval data row: one column per option letter."""
    return {"question": question["question"], "hint": question["hint"], "answer": question["answer"],
            **question["options"], **extra}


@settings(max_examples=800, deadline=None)
@given(question=_questions(), response=_responses)
def test_parse_matches_vlmevalkit_exact_matching(question, response):
    expected = ref.extract_answer_exact_matching(_row(question, prediction=response))["opt"]
    assert scoring.parse(response, question) == expected


@settings(max_examples=300, deadline=None)
@given(question=_questions(), index=st.integers(min_value=1, max_value=5000))
def test_circular_variants_match_vlmevalkit(question, index):
    expected = ref.circular_rows(_row(question, index=index))
    variants = scoring.circular_variants({**question, "index": index})
    assert len(variants) == len(expected)
    for variant, row in zip(variants, expected, strict=True):
        assert variant["circular_index"] == int(row["index"] // 1_000_000)
        assert variant["index"] == row["g_index"] == index
        assert variant["answer"] == row["answer"]
        assert variant["options"] == {k: row[k] for k in LETTERS if k in row}


@settings(max_examples=300, deadline=None)
@given(question=_questions())
def test_prompts_match_the_toolkits(question):
    row = _row(question)
    assert prompts.PROMPTS["lmms_eval"](question) == ref.mmbench_doc_to_text(row, ref.LMMS_EVAL_KWARGS)
    assert prompts.PROMPTS["vlmevalkit"](question) == ref.vlmevalkit_build_prompt(row)
    llava = vlmevalkit.text_of(vlmevalkit.LLaVA_Next().build_prompt(row, "MMBench_DEV_EN"))  # one transcription
    assert prompts.vlmevalkit_llava_internvl(question) == llava


@settings(max_examples=150, deadline=None)
@given(questions=st.lists(_questions(), min_size=1, max_size=5), data=st.data())
def test_circular_score_matches_vlmevalkit(questions, data):
    ours, theirs = [], []
    for number, question in enumerate(questions, start=1):
        category = ["coarse_perception", "logic_reasoning"][number % 2]
        for variant in scoring.circular_variants({**question, "index": number}):
            response = data.draw(st.one_of(st.sampled_from(LETTERS), _responses))
            ours.append({"question_id": number, "category": category, "answer": variant["answer"],
                         "prediction": scoring.parse(response, variant), "index": number,
                         "circular_index": variant["circular_index"], "options": json.dumps(variant["options"])})
            theirs.append({"question": question["question"], "category": category, "answer": variant["answer"],
                           "prediction": response, "index": number + 1_000_000 * variant["circular_index"],
                           **variant["options"]})
    hits = ref.mcq_circular_eval_exact_matching(pd.DataFrame(theirs))
    main = pd.DataFrame(theirs).query("index < 1000000").assign(hit=lambda f: [hits[i] for i in f["index"]])
    expected = ref.report_acc_overall_and_category(main)
    result = scoring.score(pd.DataFrame(ours))
    assert result["circular_accuracy"] == pytest.approx(100 * expected.pop("Overall"))
    for category, accuracy in expected.items():
        assert result[f"circular_accuracy/{category}"] == pytest.approx(100 * accuracy)


OPTIONS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


@pytest.mark.parametrize(("response", "letter"), [
    ("B", "B"),
    ("B. dog", "B"),                      # '.' is a separator: words B, dog
    ("(C)", "C"),
    ("The answer is C.", "C"),            # one letter, among the last 4 words
    ("A dog", "A"),                       # 'A' is a word, so option A (VLMEvalKit only warns with VERBOSE set)
    ("I think the answer is B because the image shows a dog next to the table", "B"),  # B is word 6 of 16,
    # not among the last 4, so the letter rule fails; "answer is B" then matches
    ("B is wrong, so A", "Z"),            # two letters, no "answer is", no option text: nothing
    ("dog", "B"),                         # no letter: the one option text found
    ("a cat or a dog", "Z"),              # two option texts
    ("well, it is clearly a dog, look at it", "Z"),  # 38 characters > 2 x 14 of option text: no text rule
    ("clearly a dog, look", "B"),         # 19 <= 28: the text rule finds dog
    ("Sorry, I can't help with images of people yet.", "Z"),
    ("", "Z"),
])
def test_hand_worked_parse(response, letter):
    assert scoring.parse(response, {"options": OPTIONS}) == letter
    assert ref.extract_answer_exact_matching({**OPTIONS, "prediction": response})["opt"] == letter


def test_hand_worked_rotations():
    """Options cat, dog, bird, fish with answer B (dog). Copy i shows at letter m the option
    (m + i) mod 4, so dog (originally index 1) sits at (1 - i) mod 4: B, A, D, C."""
    variants = scoring.circular_variants({"question": "q", "options": OPTIONS, "answer": "B", "index": 7})
    assert [list(v["options"].values()) for v in variants] == [
        ["cat", "dog", "bird", "fish"], ["dog", "bird", "fish", "cat"],
        ["bird", "fish", "cat", "dog"], ["fish", "cat", "dog", "bird"]]
    assert [v["answer"] for v in variants] == ["B", "A", "D", "C"]
    assert [v["circular_index"] for v in variants] == [0, 1, 2, 3]


def test_abnormal_questions_are_not_rotated():
    """An option naming two letters ("A and B") or being a letter ("C") keeps the question as it is."""
    for options in ({"A": "A and B", "B": "neither"}, {"A": "C", "B": "dog", "C": "cat"}):
        variants = scoring.circular_variants({"question": "q", "options": options, "answer": "B"})
        assert [v["circular_index"] for v in variants] == [0]
    with pytest.raises(ValueError, match="without gaps"):
        scoring.circular_variants({"question": "q", "options": {"A": "x", "C": "y"}, "answer": "A"})


def test_hand_worked_score():
    """Question 1 (category cp): all 4 rotations right -> counts. Question 2 (lr): rotations 0-2
    right, rotation 3 wrong -> does not. Circular 1/2 = 50 %; cp 100 %, lr 0 %; the unrotated copies
    alone are both right: vanilla 100 %."""
    rows = []
    for index, category, wrong in [(1, "cp", None), (2, "lr", 3)]:
        for variant in scoring.circular_variants({"question": "q", "options": OPTIONS, "answer": "B"}):
            answer = variant["answer"]
            prediction = "A" if variant["circular_index"] == wrong and answer != "A" else answer
            rows.append({"question_id": index, "category": category, "answer": answer, "prediction": prediction,
                         "index": index, "circular_index": variant["circular_index"], "options": "{}"})
    result = scoring.score(pd.DataFrame(rows))
    assert result["circular_accuracy"] == 50.0
    assert result["circular_accuracy/cp"] == 100.0
    assert result["circular_accuracy/lr"] == 0.0
    assert result["vanilla_accuracy"] == 100.0
    assert result["n_questions"] == 2 and result["n_rows"] == 8


def test_hand_worked_prompts():
    question = {"question": "What animal is this?", "options": {"A": "cat", "B": "dog"}, "hint": "A pet."}
    assert prompts.PROMPTS["lmms_eval"](question) == (
        "A pet. What animal is this? There are several options:\nA. cat\nB. dog\n\n"
        "Answer with the option's letter from the given choices directly.")
    assert prompts.PROMPTS["vlmevalkit"](question) == (
        "Hint: A pet.\nQuestion: What animal is this?\nOptions:\nA. cat\nB. dog\n"
        "Please select the correct answer from the options above. \n")
    assert prompts.vlmevalkit_llava_internvl(question) == (
        "A pet.\nWhat animal is this?\nA. cat\nB. dog\n"
        "Answer with the option's letter from the given choices directly.")


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="missing index, circular_index"):
        scoring.score(pd.DataFrame({"question_id": [1], "category": ["a"], "answer": ["A"], "prediction": ["A"]}))


def test_missing_prediction_is_wrong():
    rows = [{"question_id": 1, "category": "cp", "answer": v["answer"], "prediction": v["answer"], "index": 1,
             "circular_index": v["circular_index"], "options": "{}"}
            for v in scoring.circular_variants({"question": "q", "options": OPTIONS, "answer": "B"})]
    assert scoring.score(pd.DataFrame(rows))["circular_accuracy"] == 100.0
    rows[2]["prediction"] = None
    assert scoring.score(pd.DataFrame(rows))["circular_accuracy"] == 0.0
