"""LLaVA-NeXT (`llava-hf/llava-v1.6-*-hf`, transformers' LlavaNextForConditionalGeneration):
CLIP ViT-L/14-336 + the `llava_next` connector + the checkpoint's language model (Mistral-7B
or Vicuna-7B). The prompt holds `<image>` once; the processor repeats it once per visual token
(docs/vlm_protocols.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import CONDITIONAL_GENERATION_LM, TINY_LM, Answerer, FamilyTokens

IMAGE = "<image>"
# llava-hf/llava-v1.6-mistral-7b-hf chat_template.json: images first, then the text.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> ' }}"
    "{% endif %}{% endfor %}"
)
LM_KEYMAP = KeyMap("llava_next_lm", prefixes=CONDITIONAL_GENERATION_LM)
MISTRAL_7B = dict(
    model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, vocab_size=32064, max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1e6,
    sliding_window=None, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
)
MISTRAL_TINY = {**MISTRAL_7B, **TINY_LM, "num_key_value_heads": 2, "head_dim": 12}
TOKENS = FamilyTokens(image=IMAGE, special=("<unk>", "<s>", "</s>", IMAGE), bos="<s>", eos="</s>", unk="<unk>",
                      add_bos=True, chat_template=CHAT_TEMPLATE)


@VLMS.register("llava_next")
class LlavaNextAnswerer(Answerer):
    connector = "llava_next"
    encoder, strategy = "clip_vit_l14_336", "llava_anyres"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": MISTRAL_7B, "tiny": MISTRAL_TINY}
    hf_id = "llava-hf/llava-v1.6-mistral-7b-hf"
    tokens = TOKENS
    # VLMEvalKit's `LLaVA_Next` builds its own prompt for multiple-choice datasets
    toolkit_styles: ClassVar[dict[str, str]] = {"vlmevalkit": "llava"}
