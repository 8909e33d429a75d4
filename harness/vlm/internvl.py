"""InternVL (`OpenGVLab/InternVL3-1B-hf`, transformers' InternVLForConditionalGeneration):
InternViT-300M + the `internvl` connector + Qwen2. The chat template writes one
`<IMG_CONTEXT>` (older templates: `<image>`); the processor turns it into `<img>`,
`<IMG_CONTEXT>` x visual tokens, `</img>` (docs/vlm_protocols.md)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import Answerer
from harness.vlm.tokenizer import byte_level_tokenizer

START, END, CONTEXT, LEGACY = "<img>", "</img>", "<IMG_CONTEXT>", "<image>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# InternVL3-*-hf and original InternVL2 / Vintern checkpoints both store the LM as
# `language_model.model.*` (+ `language_model.lm_head.*` when untied).
LM_KEYMAP = KeyMap(
    "internvl_lm",
    prefixes=(
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("model.language_model.", "model."),
        ("lm_head.", "lm_head."),
    ),
)
QWEN2_05B = dict(
    model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, vocab_size=151674, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6,
    tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
)
QWEN2_TINY = {**QWEN2_05B, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320, "bos_token_id": 0,
              "eos_token_id": 2}
VIDEO = "<video>"
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", START, END, CONTEXT, VIDEO)
# The names transformers' InternVLProcessor reads from the tokenizer (`extra_special_tokens`).
NAMED = {"start_image_token": START, "end_image_token": END, "context_image_token": CONTEXT, "video_token": VIDEO}


@VLMS.register("internvl")
class InternVLAnswerer(Answerer):
    name = "internvl"
    connector = "internvl"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": QWEN2_05B, "tiny": QWEN2_TINY}
    hf_id = "OpenGVLab/InternVL3-1B-hf"

    def messages(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def expand(self, prompt: str, n_visual: int) -> str:
        placeholder = CONTEXT if prompt.count(CONTEXT) == 1 else LEGACY
        if prompt.count(placeholder) != 1:
            raise ValueError(f"internvl: the chat template must write one {CONTEXT} (or {LEGACY}) placeholder")
        return prompt.replace(placeholder, START + CONTEXT * n_visual + END)

    def image_positions(self, ids: torch.Tensor) -> torch.Tensor:
        return ids == self.tokenizer.convert_tokens_to_ids(CONTEXT)

    def check_tokenizer(self) -> None:
        missing = [t for t in (START, END, CONTEXT) if t not in self.tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"internvl: the tokenizer lacks {', '.join(missing)}")

    @classmethod
    def random_tokenizer(cls) -> PreTrainedTokenizerBase:
        return byte_level_tokenizer(SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>", extra=NAMED,
                                    chat_template=CHAT_TEMPLATE)
