"""POPE's protocols. `official`: the question as the release gives it, answers parsed by the
release's `evaluate.py` (AoiDragon/POPE: first sentence, commas out, `no`/`No`/`not` among the
words -> no, else yes); `lmms_eval`: lmms-eval's `tasks/pope/utils.py` (the question stripped, a
newline and the short-answer line; the prediction is the response lowered and stripped, so
anything but exactly yes/no is wrong and counts as neither); `vlmevalkit`: VLMEvalKit's
`ImageYORNDataset` (the question as given; `YOrN_Extraction` -> yes / no / other), with the
prompts its model wrappers build themselves in `STYLES`. All generate greedily with at most 128
new tokens (lmms-eval's `pope.yaml`; neither the release nor VLMEvalKit fixes one for POPE).
Every protocol is scored by `scoring.score` (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.benchmarks.base import SHORT_ANSWER
from harness.benchmarks.yes_no import vlmevalkit_parse


def official_parse(response: str) -> str:
    """AoiDragon/POPE `evaluate.py`: keep the text before the first period, drop commas, split on
    spaces; `No`, `not` or `no` among the words -> no, anything else -> yes."""
    text = str(response)
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def lmms_eval_parse(response: str) -> str:
    """lmms-eval `pope_process_results`: `results[0].lower().strip()`."""
    return str(response).lower().strip()


PROMPTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "official": lambda f: f["question"],
    "lmms_eval": lambda f: f["question"].strip() + "\n" + SHORT_ANSWER,
    "vlmevalkit": lambda f: f["question"],  # `ImageBaseDataset.build_prompt`
}
# VLMEvalKit `Qwen2VLPromptMixin._build_yorn_prompt` (its Y/N prompt is for POPE and HallusionBench).
# InternVL's `build_prompt` gives POPE the question as it is (its suffix is MME's): no style.
STYLES: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "vlmevalkit": {"qwen2_vl": lambda f: f["question"] + " Please answer yes or no."},
}
MAX_NEW_TOKENS = {"official": 128, "lmms_eval": 128, "vlmevalkit": 128}
PARSERS: dict[str, Callable[[str], str]] = {"official": official_parse, "lmms_eval": lmms_eval_parse,
                                            "vlmevalkit": vlmevalkit_parse}
