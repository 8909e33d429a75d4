"""VLMEvalKit's yes/no answer extraction, shared by its yes/no benchmarks (MME, POPE): the raw
response -> yes / no / other. Sources: docs/vlm_protocols.md, docs/benchmarks.md."""

from __future__ import annotations

import re

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
