"""MME's evaluation protocols: how a question becomes the user text, how long the model may
answer, and how the response becomes yes / no / other, per toolkit. Facts and sources:
docs/vlm_protocols.md. Every protocol generates greedily; scores always use MME's official rules
(`scoring.score`), which apply the official parser to the parsed prediction (a no-op on
yes / no / other). A model wrapper's own prompt under a toolkit (VLMEvalKit's InternVL suffix) is
a style in `STYLES`; which family uses it is the family's (`Answerer.toolkit_styles`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from harness.benchmarks.base import SHORT_ANSWER
from harness.benchmarks.mme.scoring import parse_answer as official_parse
from harness.benchmarks.mme.subtasks import ANSWER_SUFFIX
from harness.benchmarks.yes_no import vlmevalkit_parse

SOURCES = {
    "official": "MME eval_tool/calculation.py (BradyFU/Awesome-Multimodal-Large-Language-Models, branch Evaluation)",
    "lmms_eval": "EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/mme/{mme.yaml,utils.py}",
    "vlmevalkit": "open-compass/VLMEvalKit vlmeval/dataset/utils/yorn.py, vlmeval/vlm/internvl/internvl_chat.py",
    "internvl": "OpenGVLab/InternVL internvl_chat/eval/mme/eval.py",
}


def lmms_eval_parse(response: str) -> str:
    """lmms-eval `tasks/mme/utils.py:parse_pred_ans`: lower, strip, drop dots; exact yes/no;
    a single `y`/`n`; else the official first-four-characters rule."""
    pred = str(response).lower().strip().replace(".", "")
    if pred in ("yes", "no"):
        return pred
    if len(pred) == 1:
        return {"y": "yes", "n": "no"}.get(pred, "other")
    return official_parse(pred)  # the official first-four-characters rule


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


PROMPTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "official": lambda f: f["question"],
    "lmms_eval": lambda f: f["question"].replace(ANSWER_SUFFIX, "") + "\n" + SHORT_ANSWER,
    # VLMEvalKit: the question as the dataset gives it (`ImageBaseDataset.build_prompt`)
    "vlmevalkit": lambda f: f["question"],
    "internvl": lambda f: f["question"] + " " + SHORT_ANSWER,
}
# VLMEvalKit `InternVLChat.build_prompt`, Y/N datasets named MME: the short-answer line after the
# question. (Its LLaVA wrappers build their own prompt for MCQ only; `Qwen2VLPromptMixin` leaves
# MME to the dataset: "MME has it's own prompt".)
STYLES: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "vlmevalkit": {"internvl": lambda f: f["question"] + " " + SHORT_ANSWER},
}
MAX_NEW_TOKENS = {"official": 16, "lmms_eval": 16, "vlmevalkit": 16, "internvl": 20}
PARSERS: dict[str, Callable[[str], str]] = {
    "official": official_parse, "lmms_eval": lmms_eval_parse, "vlmevalkit": vlmevalkit_parse,
    "internvl": internvl_parse,
}
