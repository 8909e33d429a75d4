"""Phi-3-vision (`microsoft/Phi-3-vision-128k-instruct`) without its remote code: the
`phi3_hd` connector's tokens + Phi-3 as transformers' `Phi3ForCausalLM`, the checkpoint's names
mapped. Its processor splits the prompt at `<|image_1|>`, tokenizes each piece on its own and
puts -1 once per visual token between them; the embedding layer looks up max(id, 0) and
overwrites the negative positions with the image features (docs/vlm_protocols.md §4)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import torch

from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import TINY_LM, Answerer, FamilyTokens

IMAGE_TAG = re.compile(r"<\|image_\d+\|>")  # the processor's pattern
IMAGE = "<|image_1|>"
# microsoft/Phi-3-vision-128k-instruct tokenizer_config.json chat_template.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{- '<|assistant|>\n' -}}{% endif %}"
)
# `model.*` and `lm_head.*` are Phi3ForCausalLM's names already (fused `qkv_proj`, `gate_up_proj`);
# the vision tower and HD projector (`model.vision_embed_tokens.*`) are the encoder's, except its
# `wte`, the token embedding it shares with the language model.
LM_KEYMAP = KeyMap(
    "phi3_vision_lm",
    prefixes=(
        ("model.vision_embed_tokens.wte.", "model.embed_tokens."),
        ("model.", "model."),
        ("lm_head.", "lm_head."),
    ),
    ignore=(r"^model\.vision_embed_tokens\.(?!wte\.)",),
)
PHI3_MINI = dict(
    model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
    bos_token_id=1, eos_token_id=32000, pad_token_id=32000, tie_word_embeddings=False,
)
PHI3_TINY = {**PHI3_MINI, **TINY_LM, "num_key_value_heads": 4, "eos_token_id": 6, "pad_token_id": 3}
# The image tag is no token: the processor splits the text there (`token_ids`).
TOKENS = FamilyTokens(
    image=IMAGE, special=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"),
    bos="<s>", eos="<|end|>", unk="<unk>", pad="<|endoftext|>", add_bos=True, chat_template=CHAT_TEMPLATE,
    required=("<|user|>", "<|assistant|>", "<|end|>"))


@VLMS.register("phi3_vision")
class Phi3VisionAnswerer(Answerer):
    connector = "phi3_hd"
    encoder, strategy = "phi3_vision", "phi3_hd"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": PHI3_MINI, "tiny": PHI3_TINY}
    hf_id = "microsoft/Phi-3-vision-128k-instruct"
    tokens = TOKENS
    # No toolkit style: VLMEvalKit's `Phi3Vision` has no `use_custom_prompt` (generic prompts)

    def messages(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": f"{IMAGE}\n{text}"}]

    def expand(self, prompt: str, n_visual: int) -> str:
        raise NotImplementedError("phi3_vision places its image positions as negative ids (token_ids)")

    def token_ids(self, text: str, n_visual: int) -> torch.Tensor:
        """The processor's merge: every piece between image tags tokenized on its own (with
        the tokenizer's special tokens), -1 x n_visual in place of the tag."""
        tags = IMAGE_TAG.findall(text)
        if tags != [IMAGE]:
            raise ValueError(f"phi3_vision: the prompt must hold {IMAGE} once; it holds {tags}")
        before, after = IMAGE_TAG.split(text)
        return torch.cat([torch.tensor(self.tokenizer(before)["input_ids"], dtype=torch.long),
                          torch.full((n_visual,), -1, dtype=torch.long),
                          torch.tensor(self.tokenizer(after)["input_ids"], dtype=torch.long)])

    def image_positions(self, ids: torch.Tensor) -> torch.Tensor:
        return ids < 0
