"""Each MME protocol's prompt and parser on the hard cases (hand-worked from the toolkits' code,
docs/vlm_protocols.md): trailing punctuation, empty, `None`, leading space, hedges, Chinese; which
prompt style a family takes is its class's."""

from __future__ import annotations

import pytest

from harness.benchmarks import get_benchmark
from harness.benchmarks.mme.prompts import MAX_NEW_TOKENS, PARSERS, PROMPTS
from harness.benchmarks.mme.scoring import parse_answer
from harness.benchmarks.yes_no import process_punctuation
from harness.types import Question
from harness.vlm import VLMS

MME = get_benchmark("mme")

CASES = {
    # raw response: (official, lmms_eval, vlmevalkit, internvl)
    "Yes": ("yes", "yes", "yes", "yes"),
    "Yes.": ("yes", "yes", "yes", "yes"),
    "no!": ("no", "no", "no", "no"),
    "": ("other", "other", "other", "other"),
    "None": ("no", "no", "other", "no"),
    " yes": ("yes", "yes", "yes", "yes"),
    "   No": ("other", "no", "no", "no"),  # InternVL's chat() strips its answer
    "  Yes \n": ("other", "yes", "yes", "yes"),
    "Not sure": ("no", "no", "other", "no"),
    "yes, definitely": ("yes", "yes", "yes", "yes"),
    "Y": ("other", "yes", "other", "other"),
    "n": ("other", "no", "other", "other"),
    "There is no dog": ("other", "other", "no", "other"),
    "I think yes": ("other", "other", "yes", "other"),
    "Yes and no": ("yes", "yes", "other", "yes"),
    "是": ("other", "other", "other", "yes"),
    "否": ("other", "other", "other", "no"),
    "不是": ("other", "other", "other", "no"),
    "是的。": ("other", "other", "other", "yes"),
    "True": ("other", "other", "other", "yes"),
    "\nNo": ("no", "no", "no", "no"),  # "\nno"[:4] holds "no"
    "\n\n  no": ("other", "no", "no", "no"),
}


@pytest.mark.parametrize("response", list(CASES))
def test_parsers_on_hard_cases(response: str) -> None:
    got = tuple(PARSERS[name](response) for name in ("official", "lmms_eval", "vlmevalkit", "internvl"))
    assert got == CASES[response]


def test_official_protocol_reuses_the_scoring_parser() -> None:
    assert PARSERS["official"] is parse_answer


def test_vlmevalkit_punctuation_rules() -> None:
    # a punctuation mark next to a space is deleted, otherwise it becomes a space; periods go
    assert process_punctuation("yes, it is") == "yes it is"
    assert process_punctuation("yes,no") == "yes no"
    assert process_punctuation("3.5 and 1,000.") == "3.5 and 1000."  # a period after a digit stays


QUESTION = "Is there a train in this image? Please answer yes or no."


def user_text(protocol: str, family: str) -> str:
    """What the runner gives the answerer: the benchmark's prompt in the family's style."""
    question = Question("existence/1.jpg", QUESTION, ("Yes",), "existence")
    return MME.prompt(question, protocol, VLMS.get(family).prompt_style(protocol))


def test_prompts() -> None:
    assert user_text("official", "llava_next") == QUESTION
    assert user_text("lmms_eval", "internvl") == (
        "Is there a train in this image?\nAnswer the question using a single word or phrase.")
    assert user_text("vlmevalkit", "llava_next") == QUESTION
    assert user_text("vlmevalkit", "phi3_vision") == QUESTION
    assert user_text("vlmevalkit", "internvl") == QUESTION + " Answer the question using a single word or phrase."
    assert user_text("internvl", "llava_next") == QUESTION + " Answer the question using a single word or phrase."
    assert [MAX_NEW_TOKENS[n] for n in PROMPTS] == [16, 16, 16, 20]
    assert MME.parse("Yes.", Question("x", QUESTION, ("Yes",)), "lmms_eval") == "yes"


def test_unknown_protocol_names_the_choices() -> None:
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit, internvl"):
        MME.check_protocol("nope")
