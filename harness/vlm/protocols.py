"""Evaluation protocols: how an MME question becomes a prompt, how long the model may answer,
and how its answer becomes yes / no / other. Facts and sources: docs/vlm_protocols.md.

Every protocol generates greedily. The raw response and the parsed prediction are both
recorded; scores always use MME's official rules (`harness.mme.scoring.score`), which apply
the official parser to the parsed prediction (a no-op on `yes`/`no`/`other`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.mme.scoring import parse_answer as official_parse
from harness.mme.subtasks import ANSWER_SUFFIX

SHORT_ANSWER = "Answer the question using a single word or phrase."


def lmms_eval_parse(response: str) -> str:
    """lmms-eval `tasks/mme/utils.py:parse_pred_ans`: lower, strip, drop dots; exact yes/no;
    a single `y`/`n`; else the official first-four-characters rule."""
    pred = str(response).lower().strip().replace(".", "")
    if pred in ("yes", "no"):
        return pred
    if len(pred) == 1:
        return {"y": "yes", "n": "no"}.get(pred, "other")
    return official_parse(pred)  # the official first-four-characters rule


_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"(?<!\d)\.(?!\d)")


def process_punctuation(text: str) -> str:
    """VLMEvalKit `vlmeval/smp/misc.py:process_punctuation`, including its quirk: the period
    pattern's `sub(..., re.UNICODE)` passes re.UNICODE (32) as `count`, so at most 32 periods go."""
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=int(re.UNICODE))


def vlmevalkit_parse(response: str) -> str:
    """VLMEvalKit `vlmeval/dataset/utils/yorn.py:YOrN_Extraction` (exact matching, no LLM
    judge): `yes` among the words and `no` not -> yes; the reverse -> no; else other."""
    words = process_punctuation(str(response).lower()).split()
    if "yes" in words and "no" not in words:
        return "yes"
    if "no" in words and "yes" not in words:
        return "no"
    return "other"


_CJK = re.compile(r"[\u4e00-\u9fa5]")


def internvl_post_processing(response: str) -> str:
    """InternVL's own MME script (`internvl_chat/eval/mme/eval.py:post_processing`): newlines
    out, 不是 -> No, 是 -> Yes, 否 -> No, lower, true/false -> yes/no, other CJK characters out."""
    text = str(response).replace("\n", "").replace("不是", "No").replace("是", "Yes").replace("否", "No")
    text = text.lower().replace("true", "yes").replace("false", "no")
    return _CJK.sub("", text)


def internvl_parse(response: str) -> str:
    """InternVL's script post-processes what `model.chat()` returns and writes it for the official
    calculation.py. `chat()` returns `response.split(template.sep.strip())[0].strip()`: the
    answerer stops at that separator's token and skips special tokens, the strip is done here
    (`"   No"` is `no`, as InternVL scores it)."""
    return official_parse(internvl_post_processing(str(response).strip()))


@dataclass(frozen=True)
class Protocol:
    """Prompt text, generation length and answer parser of one evaluation toolkit.

    `prompt(question, family)` returns the user text (the image placeholder is the family's
    business); `max_new_tokens` is the toolkit's own limit (a run's `vlm.max_new_tokens`
    overrides it); `parse(response)` returns yes / no / other.
    """

    name: str
    source: str
    max_new_tokens: int
    build: Callable[[str, str], str]
    parse: Callable[[str], str]

    def prompt(self, question: str, family: str) -> str:
        return self.build(question, family)


def _official(question: str, family: str) -> str:
    return question


def _lmms_eval(question: str, family: str) -> str:
    return question.replace(ANSWER_SUFFIX, "") + "\n" + SHORT_ANSWER


def _vlmevalkit(question: str, family: str) -> str:
    # InternVLChat.build_prompt (Y/N, MME) adds the short-answer line; LLaVA_Next and
    # Phi3Vision use no custom prompt for Y/N datasets: the question as the dataset gives it.
    return question + " " + SHORT_ANSWER if family == "internvl" else question


def _internvl(question: str, family: str) -> str:
    return question + " " + SHORT_ANSWER


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("official", "MME eval_tool/calculation.py (BradyFU/Awesome-Multimodal-Large-Language-Models, "
                 "branch Evaluation)", 16, _official, official_parse),
        Protocol("lmms_eval", "EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/mme/{mme.yaml,utils.py}", 16, _lmms_eval,
                 lmms_eval_parse),
        Protocol("vlmevalkit", "open-compass/VLMEvalKit vlmeval/dataset/utils/yorn.py, vlmeval/vlm/internvl/"
                 "internvl_chat.py", 16, _vlmevalkit, vlmevalkit_parse),
        Protocol("internvl", "OpenGVLab/InternVL internvl_chat/eval/mme/eval.py", 20, _internvl, internvl_parse),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown vlm.protocol {name!r}; valid choices: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
