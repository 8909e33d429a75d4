"""TextVQA's user text per evaluation toolkit (docs/benchmark_scoring.md §2.1): what each toolkit
writes after the image for one question."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.benchmarks.base import qwen2_vl_vqa

# lmms-eval `tasks/textvqa/_default_template_textvqa_yaml` (default post_prompt, OCR tokens off) and
# VLMEvalKit `ImageVQADataset.build_prompt`: the same short-answer instruction on its own line.
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def lmms_eval(fields: Mapping[str, Any]) -> str:
    """`textvqa_doc_to_text`: the question through `str.capitalize()` (first letter upper, every
    other letter LOWER: "What is the Brand?" -> "What is the brand?"), then the instruction."""
    return f"{fields['question'].capitalize()}{SHORT_ANSWER}"


def vlmevalkit(fields: Mapping[str, Any]) -> str:
    """`ImageBaseDataset.build_prompt` (the question as given) + `ImageVQADataset`'s instruction."""
    return f"{fields['question']}{SHORT_ANSWER}"


PROMPTS: dict[str, Callable[[Mapping[str, Any]], str]] = {"lmms_eval": lmms_eval, "vlmevalkit": vlmevalkit}
# The prompts VLMEvalKit's model wrappers build themselves (`Answerer.toolkit_styles` picks one).
# InternVL's for this dataset (`InternVLChat.build_prompt`) is the generic one: no style needed.
STYLES: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "vlmevalkit": {"qwen2_vl": qwen2_vl_vqa},
}
# lmms-eval's TextVQA task sets no max_new_tokens (generation stops at "ASSISTANT:" or EOS): its
# LLaVA wrappers then use 1024. VLMEvalKit sets none per dataset: its LLaVA wrappers use 2048
# (InternVL 4096).
MAX_NEW_TOKENS: dict[str, int] = {"lmms_eval": 1024, "vlmevalkit": 2048}
