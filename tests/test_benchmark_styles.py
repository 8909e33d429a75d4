"""Each family's prompt under VLMEvalKit, per benchmark, against VLMEvalKit's own dispatch
(`use_custom_prompt` then the wrapper's or the dataset's `build_prompt`) transcribed in
tests/references/vlmevalkit_prompts_reference.py: hints, missing options, no options, Chinese
text, MME's yes/no suffix; plus hand-worked texts of every style."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.benchmarks import get_benchmark
from harness.types import Question
from harness.vlm import VLMS
from tests.references import mmbench_reference
from tests.references import vlmevalkit_prompts_reference as ref

FAMILIES = ("llava_next", "internvl", "qwen2_5_vl", "llava_onevision", "phi3_vision")
# harness benchmark -> VLMEvalKit dataset name (what its wrappers key on)
DATASETS = {"mme": "MME", "pope": "POPE", "textvqa": "TextVQA_VAL", "docvqa": "DocVQA_VAL", "chartqa": "ChartQA_TEST",
            "mmbench": "MMBench_DEV_EN"}
NAN = math.nan

MCQ_ROWS = [  # question, options (NaN: a letter the row leaves empty), hint
    ("What animal is this?", {"A": "cat", "B": "dog"}, "A pet."),
    ("What animal is this?", {"A": "cat", "B": "dog", "C": NAN, "D": "bird"}, None),
    ("Which one?", {"A": "red", "B": "blue", "C": "green", "D": "black", "E": "white"}, NAN),
    ("Describe the scene.", {}, None),  # no options: "answer directly"
    ("Describe the scene.", {}, "Look closely."),
    ("这是什么动物？", {"A": "猫", "B": "狗"}, None),  # Chinese question
    ("What is this?", {"A": "cat", "B": "dog"}, "提示：一只宠物。"),  # Chinese only in the hint
    ("What is this?", {"A": "猫", "B": "dog"}, None),  # Chinese only in an option
    ("这是什么？", {}, None),  # Chinese, no options
    ("What is this?", {"A": "cat", "B": "dog"}, ""),  # an empty (not missing) hint
]
VQA_QUESTIONS = ["what is the Brand of this CAMERA?", "  spaced question  ", "图中的数字是多少？"]
MME_QUESTIONS = ["Is there a train in this image? Please answer yes or no.", "图中有火车吗？请回答是或否。"]
POPE_QUESTIONS = ["Is there a dog in the image?", " Is there a cat in the image? "]


def _mcq(question: str, options: dict, hint) -> tuple[Question, dict]:
    q = Question("1", question, ("A",), "cp", options=dict(options), fields={"hint": hint})
    return q, {"question": question, "hint": hint, **options}


def _cases(benchmark: str) -> list[tuple[Question, dict]]:
    if benchmark == "mmbench":
        return [_mcq(*row) for row in MCQ_ROWS]
    texts = {"mme": MME_QUESTIONS, "pope": POPE_QUESTIONS}.get(benchmark, VQA_QUESTIONS)
    return [(Question("1", t, ("x",)), {"question": t}) for t in texts]


def _ours(benchmark: str, question: Question, style: str | None) -> str:
    return get_benchmark(benchmark).prompt(question, "vlmevalkit", style)


def _theirs(wrapper: str, benchmark: str, row: dict) -> str:
    return ref.toolkit_text(wrapper, DATASETS[benchmark], row, mmbench_reference.vlmevalkit_build_prompt)


@pytest.mark.parametrize("benchmark", list(DATASETS))
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_gets_its_wrappers_prompt(family, benchmark):
    style = VLMS.get(family).prompt_style("vlmevalkit")
    for question, row in _cases(benchmark):
        assert _ours(benchmark, question, style) == _theirs(family, benchmark, row)


@pytest.mark.parametrize("benchmark", list(DATASETS))
def test_qwen2_vl_style_is_the_mixins_prompt(benchmark):
    """What VLMEvalKit's Qwen2-VL entries get (its Qwen2.5-VL entries switch the mixin off)."""
    for question, row in _cases(benchmark):
        assert _ours(benchmark, question, "qwen2_vl") == _theirs("qwen2_vl", benchmark, row)


_text = st.sampled_from(["cat", "dog", "A and B", "red (A)", "猫", "狗", "2", "", "  x  "])


@settings(max_examples=300, deadline=None)
@given(question=st.sampled_from(["What animal is this?", "哪一个？", "Which one?\n"]),
       options=st.dictionaries(st.sampled_from("ABCDE"), st.one_of(_text, st.just(NAN)), max_size=5),
       hint=st.sampled_from([None, NAN, "", "A pet.", "提示"]),
       wrapper=st.sampled_from(["llava_next", "internvl", "qwen2_vl", "phi3_vision"]))
def test_mmbench_styles_match_the_toolkit_on_any_row(question, options, hint, wrapper):
    style = "qwen2_vl" if wrapper == "qwen2_vl" else VLMS.get(wrapper).prompt_style("vlmevalkit")
    q, row = _mcq(question, dict(sorted(options.items())), hint)
    assert _ours("mmbench", q, style) == _theirs(wrapper, "mmbench", row)


def test_hand_worked_styles():
    q, _ = _mcq("What animal is this?", {"A": "cat", "B": "dog"}, "A pet.")
    assert _ours("mmbench", q, "llava") == _ours("mmbench", q, "internvl") == (
        "A pet.\nWhat animal is this?\nA. cat\nB. dog\n"
        "Answer with the option's letter from the given choices directly.")
    assert _ours("mmbench", q, "qwen2_vl") == (
        "Hint: A pet.\nQuestion: What animal is this?\nOptions:\nA. cat\nB. dog\n"
        "Please select the correct answer from the options above.")
    cn, _ = _mcq("这是什么动物？", {"A": "猫", "B": "狗"}, None)
    assert _ours("mmbench", cn, "llava") == "这是什么动物？\nA. 猫\nB. 狗\n请直接回答选项字母。"
    assert _ours("mmbench", cn, "qwen2_vl") == "Question: 这是什么动物？\nOptions:\nA. 猫\nB. 狗\n请直接回答选项字母。"
    bare, _ = _mcq("Describe the scene.", {}, None)
    assert _ours("mmbench", bare, "internvl") == "Describe the scene.\nAnswer the question directly."
    assert _ours("mmbench", bare, "qwen2_vl") == "Question: Describe the scene."
    vqa = Question("1", "what is written?", ("x",))
    assert _ours("textvqa", vqa, "qwen2_vl") == (
        "what is written?\nPlease try to answer the question with short words or phrases if possible.")
    assert _ours("textvqa", vqa, "internvl") == _ours("textvqa", vqa, None) == (
        "what is written?\nAnswer the question using a single word or phrase.")
    mme = Question("1", "Is it red? Please answer yes or no.", ("Yes",))
    assert _ours("mme", mme, "internvl") == (
        "Is it red? Please answer yes or no. Answer the question using a single word or phrase.")
    assert _ours("mme", mme, "qwen2_vl") == _ours("mme", mme, None) == "Is it red? Please answer yes or no."


def test_every_family_style_exists_somewhere():
    """A family's style name is found in some benchmark (a typo would silently give the generic one)."""
    assert set(FAMILIES) == set(VLMS.names())
    named = {s for b in DATASETS for s in get_benchmark(b).styles("vlmevalkit")}
    for family in FAMILIES:
        style = VLMS.get(family).prompt_style("vlmevalkit")
        assert style is None or style in named, family
    assert {VLMS.get(f).prompt_style("vlmevalkit") for f in FAMILIES} == {"llava", "internvl", None}
    assert all(VLMS.get(f).prompt_style(p) is None for f in FAMILIES for p in ("official", "lmms_eval"))


def test_a_family_with_its_own_prompts_has_other_results_than_the_generic_ones():
    """The style is part of the resume key, so results answered with the generic prompts are
    never taken for a styled family's; families without a style keep the key they had."""
    options = {"weights": "random", "size": "tiny", "max_new_tokens": None}
    styled = VLMS.get("internvl").key_of({**options, "protocol": "vlmevalkit"})
    assert styled["prompt_style"] == VLMS.get("internvl").toolkit_styles["vlmevalkit"]
    for family in FAMILIES:
        cls = VLMS.get(family)
        assert "prompt_style" not in cls.key_of({**options, "protocol": "lmms_eval"})
        keyed = "prompt_style" in cls.key_of({**options, "protocol": "vlmevalkit"})
        assert keyed == ("vlmevalkit" in cls.toolkit_styles)
