"""ChartQA's user text per evaluation toolkit (docs/benchmark_scoring.md §4.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.benchmarks.base import qwen2_vl_vqa


def lmms_eval(fields: Mapping[str, Any]) -> str:
    """`chartqa_doc_to_text` with `chartqa.yaml`'s default post_prompt (a single WORD, unlike the
    other VQA tasks' "word or phrase")."""
    return f"{fields['question']}\nAnswer the question with a single word."


def vlmevalkit(fields: Mapping[str, Any]) -> str:
    """`ImageBaseDataset.build_prompt` (the question as given) + `ImageVQADataset`'s instruction."""
    return f"{fields['question']}\nAnswer the question using a single word or phrase."


PROMPTS: dict[str, Callable[[Mapping[str, Any]], str]] = {"lmms_eval": lmms_eval, "vlmevalkit": vlmevalkit}
# The prompts VLMEvalKit's model wrappers build themselves (`Answerer.toolkit_styles` picks one).
# InternVL's for this dataset (`InternVLChat.build_prompt`) is the generic one: no style needed.
STYLES: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "vlmevalkit": {"qwen2_vl": qwen2_vl_vqa},
}
# lmms-eval: `chartqa.yaml` generation_kwargs (max_new_tokens 16). VLMEvalKit sets none per
# dataset: its LLaVA wrappers use 2048 (InternVL 4096).
MAX_NEW_TOKENS: dict[str, int] = {"lmms_eval": 16, "vlmevalkit": 2048}
