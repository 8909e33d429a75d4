"""Qwen2.5-VL (`Qwen/Qwen2.5-VL-7B-Instruct`, transformers' Qwen2_5_VLForConditionalGeneration):
the `qwen2_5_vl_vit` encoder (its merger is the `qwen_merger` connector) + Qwen2.5's language
model with multimodal rotary positions (M-RoPE). The chat template writes
`<|vision_start|><|image_pad|><|vision_end|>`; the processor repeats `<|image_pad|>` once per
merged token. Text positions count up one by one; the image's tokens take 3-D positions
(temporal, row, column of the merged grid, each offset by the position the image starts at) and
the text after it continues from the image's largest position + 1, so a native-resolution view
is placed as the model was trained (`get_rope_index`, docs/vlm_protocols.md §4).

The language model is built without the vision tower: `Qwen2_5_VLTextModel` + an output head
(`Qwen2_5_VLTextForCausalLM`, registered with AutoModelForCausalLM for `qwen2_5_vl_text`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPreTrainedModel, Qwen2_5_VLTextModel

from harness.connectors.qwen_merger import QwenMerger
from harness.encoders.weights import KeyMap
from harness.types import Layout
from harness.vlm import VLMS
from harness.vlm.base import TINY_LM, Answerer, FamilyTokens, Prompt

IMAGE, START, END = "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"
# Qwen/Qwen2.5-VL-7B-Instruct chat_template.json: a default system turn, then ChatML with each
# image written as <|vision_start|><|image_pad|><|vision_end|> where it stands in the content.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOKENS = FamilyTokens(
    image=IMAGE, required=(START, IMAGE, END), eos="<|im_end|>", pad="<|endoftext|>", chat_template=CHAT_TEMPLATE,
    special=("<|endoftext|>", "<|im_start|>", "<|im_end|>", START, END, IMAGE, "<|video_pad|>"),
)
# The hub's files (and transformers 5's save_pretrained) name the LM `model.*` beside `visual.*`;
# transformers' in-memory names are `model.language_model.*`. The vision tower is the encoder's.
LM_KEYMAP = KeyMap(
    "qwen2_5_vl_lm",
    prefixes=(("model.language_model.", "model."), ("model.", "model."), ("lm_head.", "lm_head.")),
    ignore=(r"^model\.visual\.",),
)
# Qwen/Qwen2.5-VL-7B-Instruct config.json (text part); rotary sections of the 128-wide heads:
# 16 temporal, 24 row, 24 column frequency pairs.
QWEN2_5_7B = dict(
    model_type="qwen2_5_vl_text", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000,
    rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645,
)
QWEN2_5_TINY = {**QWEN2_5_7B, **TINY_LM, "num_key_value_heads": 2, "bos_token_id": None, "eos_token_id": 2,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 2, 2]}}


class Qwen2_5_VLTextForCausalLM(Qwen2_5_VLPreTrainedModel, GenerationMixin):
    """Qwen2.5-VL's language model and output head, no vision tower: `model.*` and `lm_head.*`
    as Qwen2ForCausalLM names them. Position ids `[3, B, L]` carry the multimodal positions; 2-D
    ones are the same position on all three axes (text)."""

    config_class = Qwen2_5_VLTextConfig
    config: Qwen2_5_VLTextConfig
    input_modalities = ("text",)
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: Qwen2_5_VLTextConfig) -> None:
        super().__init__(config)
        self.model = Qwen2_5_VLTextModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(
        self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None, cache: Any = None,
        inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None, logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self.lm_head(hidden), cache=out.cache)


AutoModelForCausalLM.register(Qwen2_5_VLTextConfig, Qwen2_5_VLTextForCausalLM, exist_ok=True)


def merged_grids(layout: Layout) -> list[tuple[int, int]]:
    """(rows, columns) of merged tokens of each content view, in encoder order: one view at
    native resolution, or each tile (every view is `view_wh`, units of 28 px)."""
    w, h = layout.view_wh
    return [(h // QwenMerger.UNIT, w // QwenMerger.UNIT)] * layout.n_views


def mrope_positions(image_mask: torch.Tensor, grids: list[tuple[int, int]]) -> tuple[torch.Tensor, int]:
    """`get_rope_index` for one still image: text tokens count up; the image tokens (the mask's
    True run) take (start, start + row, start + column) per view, each view starting after the
    previous one's largest position (tiles as consecutive images); the text after an image
    continues at its largest position + 1. Returns `[3, L]` and the decode offset
    (largest position + 1 - L)."""
    n_image = int(image_mask.sum())
    if n_image != sum(r * c for r, c in grids):
        raise ValueError(f"qwen2_5_vl: {n_image} image positions for a merged grid of "
                         f"{sum(r * c for r, c in grids)} tokens; 3-D positions need the merger's whole grid "
                         f"(no token reduction)")
    out = torch.empty((3, image_mask.numel()), dtype=torch.long)
    pos, i, views = 0, 0, iter(grids)
    mask = image_mask.tolist()
    while i < len(mask):
        if not mask[i]:
            out[:, i] = pos
            pos, i = pos + 1, i + 1
            continue
        while i < len(mask) and mask[i]:
            rows, cols = next(views)
            r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
            span = slice(i, i + rows * cols)
            out[0, span], out[1, span], out[2, span] = pos, pos + r.flatten(), pos + c.flatten()
            pos, i = pos + max(rows, cols), i + rows * cols
    return out, int(out.max()) + 1 - image_mask.numel()


@VLMS.register("qwen2_5_vl")
class Qwen2_5_VLAnswerer(Answerer):
    connector = "qwen_merger"
    encoder, strategy = "qwen2_5_vl_vit", "qwen_native"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": QWEN2_5_7B, "tiny": QWEN2_5_TINY}
    hf_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    tokens = TOKENS
    # No toolkit style: VLMEvalKit registers every Qwen2.5-VL model with `use_custom_prompt=False`
    # (vlmeval/config.py), so they get the datasets' generic prompts; `Qwen2VLPromptMixin`'s prompts
    # (style `qwen2_vl`) are what its Qwen2-VL entries get.

    def positions(self, prompt: Prompt, layout: Layout | None) -> tuple[torch.Tensor | None, int]:
        if layout is None:
            raise ValueError("qwen2_5_vl: answering needs the image's layout (its 3-D positions follow the grid)")
        ids, offset = mrope_positions(prompt.image_mask, merged_grids(layout))
        return ids[:, None, :], offset
