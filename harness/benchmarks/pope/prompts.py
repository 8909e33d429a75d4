"""POPE's protocols. `official`: the question as the release gives it, answers parsed by the
release's `evaluate.py` (AoiDragon/POPE: first sentence, commas out, `no`/`No`/`not` among the
words -> no, else yes); `lmms_eval`: lmms-eval's `tasks/pope/utils.py` (the question stripped, a
newline and the short-answer line; the prediction is the response lowered and stripped, so
anything but exactly yes/no is wrong and counts as neither). Both generate greedily with at most
128 new tokens (lmms-eval's `pope.yaml`; the release fixes no limit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.benchmarks.base import SHORT_ANSWER


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
}
MAX_NEW_TOKENS = {"official": 128, "lmms_eval": 128}
PARSERS: dict[str, Callable[[str], str]] = {"official": official_parse, "lmms_eval": lmms_eval_parse}
