"""Each protocol's prompt and parser on the hard cases (hand-worked from the toolkits' code,
docs/vlm_protocols.md): trailing punctuation, empty, `None`, leading space, hedges, Chinese."""

from __future__ import annotations

import pytest

from harness.mme.scoring import parse_answer
from harness.vlm.protocols import PROTOCOLS, get_protocol, process_punctuation

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
    got = tuple(PROTOCOLS[name].parse(response) for name in ("official", "lmms_eval", "vlmevalkit", "internvl"))
    assert got == CASES[response]


def test_official_protocol_reuses_the_scoring_parser() -> None:
    assert PROTOCOLS["official"].parse is parse_answer


def test_vlmevalkit_punctuation_rules() -> None:
    # a punctuation mark next to a space is deleted, otherwise it becomes a space; periods go
    assert process_punctuation("yes, it is") == "yes it is"
    assert process_punctuation("yes,no") == "yes no"
    assert process_punctuation("3.5 and 1,000.") == "3.5 and 1000."  # a period after a digit stays


QUESTION = "Is there a train in this image? Please answer yes or no."


def test_prompts() -> None:
    assert get_protocol("official").prompt(QUESTION, "llava_next") == QUESTION
    assert get_protocol("lmms_eval").prompt(QUESTION, "internvl") == (
        "Is there a train in this image?\nAnswer the question using a single word or phrase.")
    assert get_protocol("vlmevalkit").prompt(QUESTION, "llava_next") == QUESTION
    assert get_protocol("vlmevalkit").prompt(QUESTION, "phi3_vision") == QUESTION
    assert get_protocol("vlmevalkit").prompt(QUESTION, "internvl") == (
        QUESTION + " Answer the question using a single word or phrase.")
    assert get_protocol("internvl").prompt(QUESTION, "llava_next") == (
        QUESTION + " Answer the question using a single word or phrase.")
    assert [get_protocol(n).max_new_tokens for n in PROTOCOLS] == [16, 16, 16, 20]


def test_unknown_protocol_names_the_choices() -> None:
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit, internvl"):
        get_protocol("nope")
