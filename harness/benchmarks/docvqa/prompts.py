"""DocVQA's user text per evaluation toolkit (docs/benchmark_scoring.md §3.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.benchmarks.base import qwen2_vl_vqa

# lmms-eval `tasks/docvqa/_default_template_docvqa_yaml` (default post_prompt) and VLMEvalKit
# `ImageVQADataset.build_prompt`: the same instruction on its own line after the question.
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def lmms_eval(fields: Mapping[str, Any]) -> str:
    """`docvqa_doc_to_text`: pre_prompt "" + the question as given + post_prompt."""
    return f"{fields['question']}{SHORT_ANSWER}"


def vlmevalkit(fields: Mapping[str, Any]) -> str:
    """`ImageBaseDataset.build_prompt` (the question as given) + `ImageVQADataset`'s instruction."""
    return f"{fields['question']}{SHORT_ANSWER}"


PROMPTS: dict[str, Callable[[Mapping[str, Any]], str]] = {"lmms_eval": lmms_eval, "vlmevalkit": vlmevalkit}
# The prompts VLMEvalKit's model wrappers build themselves (`Answerer.toolkit_styles` picks one).
# InternVL's for this dataset (`InternVLChat.build_prompt`) is the generic one: no style needed.
STYLES: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "vlmevalkit": {"qwen2_vl": qwen2_vl_vqa},
}
# lmms-eval: the task's generation_kwargs (max_new_tokens 32). VLMEvalKit sets none per dataset:
# its LLaVA wrappers use 2048 (InternVL 4096).
MAX_NEW_TOKENS: dict[str, int] = {"lmms_eval": 32, "vlmevalkit": 2048}
