"""LLaVA-OneVision (`llava-hf/llava-onevision-qwen2-0.5b-ov-hf`, transformers'
LlavaOnevisionForConditionalGeneration): SigLIP so400m (`siglip_so400m`) + the `llava_onevision`
connector (base view, anyres_max_9 grid, image_newline) + Qwen2. The chat template writes
`<image>` once; the processor repeats it once per visual token: 729 for the base view, then the
unpadded (and, past 9 tiles' worth, shrunk) grid with one newline per row, the count the
connector produces (docs/vlm_protocols.md §4)."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import CONDITIONAL_GENERATION_LM, TINY_LM, Answerer, FamilyTokens

IMAGE = "<image>"
# llava-hf/llava-onevision-qwen2-*-ov-hf chat_template.json: ChatML with the role followed by a
# space, every image, then every text each after a newline.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOKENS = FamilyTokens(image=IMAGE, special=("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE, "<video>"),
                      eos="<|im_end|>", pad="<|endoftext|>", chat_template=CHAT_TEMPLATE)
LM_KEYMAP = KeyMap("llava_onevision_lm", prefixes=CONDITIONAL_GENERATION_LM)
# llava-hf/llava-onevision-qwen2-0.5b-ov-hf config.json text_config (Qwen2-0.5B, tied output head).
QWEN2_05B = dict(
    model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, vocab_size=152000, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6,
    tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
)
QWEN2_TINY = {**QWEN2_05B, **TINY_LM, "num_key_value_heads": 2, "bos_token_id": None, "eos_token_id": 2}


@VLMS.register("llava_onevision")
class LlavaOnevisionAnswerer(Answerer):
    connector = "llava_onevision"
    encoder, strategy = "siglip_so400m", "llava_onevision"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": QWEN2_05B, "tiny": QWEN2_TINY}
    hf_id = "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
    tokens = TOKENS
    # No toolkit style: VLMEvalKit's `LLaVA_OneVision_HF` / `LLaVA_OneVision` have no `use_custom_prompt`
