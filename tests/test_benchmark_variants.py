"""The differences docs/benchmark_scoring.md states between the harness (lmms-eval's rules) and the
official VQA script / VLMEvalKit, asserted against transcriptions of those
(tests/references/vqa_variants_reference.py): equal where the docs say equal, different where they
say different."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.benchmarks.chartqa import scoring as chartqa
from harness.benchmarks.docvqa import scoring as docvqa
from harness.benchmarks.textvqa import scoring as textvqa
from tests.references import vqa_variants_reference as other

# Lower-case words and marks without the characters lmms-eval treats first (",", "?", "'s").
_plain = st.lists(st.sampled_from(["the", "a", "two", "2", "dont", "coca-cola", "coca", "cola", "3.5", "no.",
                                   "(tm)", "x/y", "!", ".", "-", "yes", "stop"]), min_size=1, max_size=5).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(response=_plain, answers=st.lists(_plain, min_size=2, max_size=10))
def test_official_vqa_agrees_when_answers_differ_and_text_is_plain(response, answers):
    assume(len(set(a.strip() for a in answers)) > 1)
    official = other.VQAEvalOfficial().question_accuracy(answers, response)
    assert textvqa.vqa_accuracy(textvqa.parse(response, {}), answers) == pytest.approx(official, abs=1e-12)


def test_official_vqa_differences():
    """Ten identical answers are compared raw by the official script: `two` vs `Two` scores 0
    there, 1 in lmms-eval. The period after a digit goes in both (the same pattern)."""
    official = other.VQAEvalOfficial()
    assert official.question_accuracy(["Two"] * 10, "two") == 0.0
    assert textvqa.vqa_accuracy(textvqa.parse("two", {}), ["Two"] * 10) == 1.0
    assert official.processDigitArticle(official.processPunctuation("3.")) == textvqa.normalize_answer("3.") == "3"


@pytest.mark.parametrize(("raw", "lmms_eval", "vlmevalkit"), [
    ("3.", "3", "3."),
    ("It's", "it 's", "it's"),
    ("a,b", "ab", "b"),
    ("The Two dogs.", "2 dogs", "2 dogs"),
])
def test_vlmevalkit_vqa_normalisation_differences(raw, lmms_eval, vlmevalkit):
    assert textvqa.normalize_answer(raw) == lmms_eval
    assert other.process_answer(raw) == vlmevalkit


def test_vlmevalkit_anls_keeps_surrounding_whitespace():
    """` 1995 ` vs `1996`: 1 edit; lmms-eval divides by 4 (stripped), VLMEvalKit by 6."""
    vlmevalkit = other.hit_calculate([other.process_line({"answer": "1996", "prediction": " 1995 "}, "anls")],
                                     "DocVQA_VAL")[0]
    assert vlmevalkit == pytest.approx(1 - 1 / 6)
    assert docvqa.anls(docvqa.parse(" 1995 ", {}), ["1996"]) == pytest.approx(0.75)


_doc_text = st.text(alphabet=st.sampled_from([*"abAB 19-.", "ß"]), max_size=10)


@settings(max_examples=300, deadline=None)
@given(prediction=_doc_text, answers=st.lists(_doc_text, min_size=1, max_size=3))
def test_vlmevalkit_anls_is_the_same_formula_on_stripped_predictions(prediction, answers):
    prediction = prediction.strip()
    line = {"answer": str(answers), "prediction": prediction}
    vlmevalkit = other.hit_calculate([other.process_line(line, "anls")], "DocVQA_VAL")[0]
    assert docvqa.anls(prediction, answers) == pytest.approx(float(vlmevalkit), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(response=st.text(alphabet=st.sampled_from([*"0125.%e -Aa"]), max_size=7),
       target=st.sampled_from(["20", "0", "12%", "Yes", "0.12", "1e3", "-4"]))
def test_vlmevalkit_relaxed_accuracy_is_the_same(response, target):
    vlmevalkit = other.hit_calculate([other.process_line({"answer": target, "prediction": response},
                                                         "relaxed_accuracy")], "ChartQA_TEST")[0]
    assert chartqa.relaxed_correctness(chartqa.parse(response, {}), target) == bool(vlmevalkit)
