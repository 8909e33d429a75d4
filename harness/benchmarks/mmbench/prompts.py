"""MMBench's user text per evaluation toolkit (docs/benchmark_scoring.md §5.1). Fields: `question`,
`options` (letter -> text), `hint` (None/NaN when the question has none)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from harness.benchmarks.mmbench.scoring import is_absent, options_of

LETTER_ONLY = "Answer with the option's letter from the given choices directly."
SELECT = "Please select the correct answer from the options above."


def _hint(fields: Mapping[str, Any]) -> str | None:
    hint = fields.get("hint")
    return None if is_absent(hint) else hint


def lmms_eval(fields: Mapping[str, Any]) -> str:
    """lmms-eval `mmbench_doc_to_text`: "[hint ]question There are several options:\\nA. ...\\nB. ..."
    then a blank line and the letter instruction (the yaml's post_prompt starts with a newline and is
    joined with another). Only options A-E, and none that is empty or the string "nan"."""
    options = {k: v for k, v in options_of(fields).items() if k in "ABCDE" and v and v != "nan"}
    listing = ("There are several options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())).rstrip("\n")
    hint = _hint(fields)
    head = f"{hint} {fields['question']}" if hint is not None and hint != "nan" else fields["question"]
    return f"{head} {listing}\n\n{LETTER_ONLY}"


def vlmevalkit(fields: Mapping[str, Any]) -> str:
    """VLMEvalKit `ImageMCQDataset.build_prompt` (models without a custom prompt, e.g. Phi-3-vision):
    "Hint: ...\\n" if any, "Question: ...\\n", "Options:\\n" + "X. text\\n" per option, and
    "Please select the correct answer from the options above. \\n" (trailing space and newline)."""
    prompt, options = _listed(fields)
    return prompt + f"{SELECT} \n" if options else prompt


def _listed(fields: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The layout of VLMEvalKit's generic MCQ prompt before its closing line: "Hint: ...\\n" if any,
    "Question: ...\\n", then "Options:\\n" and "X. text\\n" per option when there are options."""
    options = options_of(fields)
    hint = _hint(fields)
    prompt = (f"Hint: {hint}\n" if hint is not None else "") + f"Question: {fields['question']}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
    return prompt, options


def _is_chinese(text: str) -> bool:
    """VLMEvalKit `vlmeval/smp/misc.py:cn_string`: any CJK unified ideograph (U+4E00-U+9FFF)."""
    return re.search("[\u4e00-\u9fff]", text) is not None


def vlmevalkit_llava_internvl(fields: Mapping[str, Any]) -> str:
    """The custom MCQ prompt of VLMEvalKit's LLaVA / LLaVA-NeXT (`LLaVA.build_prompt`,
    `LLaVA_Next.build_prompt`) and InternVL (`build_multi_choice_prompt`) wrappers: "[hint\\n]question",
    "\\nX. text" per option, then "\\n" + the letter instruction; when the text so far holds Chinese,
    请直接回答选项字母。 (no options: "Answer the question directly." / 请直接回答问题。)."""
    options = options_of(fields)
    hint = _hint(fields)
    prompt = (f"{hint}\n" if hint is not None else "") + fields["question"]
    prompt += "".join(f"\n{k}. {v}" for k, v in options.items())
    chinese = _is_chinese(prompt)
    if options:
        return prompt + ("\n请直接回答选项字母。" if chinese else f"\n{LETTER_ONLY}")
    return prompt + ("\n请直接回答问题。" if chinese else "\nAnswer the question directly.")


def vlmevalkit_qwen2_vl(fields: Mapping[str, Any]) -> str:
    """VLMEvalKit `Qwen2VLPromptMixin._build_mcq_prompt`: the generic layout ("Hint: ...",
    "Question: ...", "Options:" and one line per option), closed by "Please select the correct answer
    from the options above." (请直接回答选项字母。 when the text so far holds Chinese), the whole
    stripped at the end (so no trailing space or newline, unlike the generic prompt)."""
    prompt, options = _listed(fields)
    if options:
        prompt += "请直接回答选项字母。" if _is_chinese(prompt) else SELECT
    return prompt.rstrip()


PROMPTS: dict[str, Callable[[Mapping[str, Any]], str]] = {"lmms_eval": lmms_eval, "vlmevalkit": vlmevalkit}
# The prompts VLMEvalKit's model wrappers build themselves for MCQ datasets (`use_custom_prompt`),
# named after the wrapper; each family says which one it is (`Answerer.toolkit_styles`).
STYLES: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "vlmevalkit": {"llava": vlmevalkit_llava_internvl, "internvl": vlmevalkit_llava_internvl,
                   "qwen2_vl": vlmevalkit_qwen2_vl},
}
# lmms-eval: `_default_template_mmbench_en_yaml` generation_kwargs (max_new_tokens 1024). VLMEvalKit
# sets none per dataset: its LLaVA wrappers use 2048 (InternVL 4096).
MAX_NEW_TOKENS: dict[str, int] = {"lmms_eval": 1024, "vlmevalkit": 2048}
