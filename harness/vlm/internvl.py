"""InternVL: InternViT-300M + the `internvl` connector + Qwen2, in two layouts.

transformers' (`OpenGVLab/InternVL3-1B-hf`, InternVLForConditionalGeneration): the chat template
writes one `<IMG_CONTEXT>` (older templates: `<image>`); the processor turns it into `<img>`,
`<IMG_CONTEXT>` x visual tokens, `</img>`. The original one (`OpenGVLab/InternVL2-1B`,
`5CD-AI/Vintern-1B-v2`: config.json with `llm_config` and `template`): the checkpoint's
conversation template (`model.chat`), `<image>\n` before the question, expanded the same way,
generation ending at the template's separator, the config's `system_message` (when it has one)
over the template's, as `InternVLChatModel.__init__` does (docs/vlm_protocols.md §4)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import CONDITIONAL_GENERATION_LM, TINY_LM, Answerer, FamilyTokens

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
LM_KEYMAP = KeyMap("internvl_lm", prefixes=CONDITIONAL_GENERATION_LM)
QWEN2_05B = dict(
    model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, vocab_size=151674, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6,
    tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
)
QWEN2_TINY = {**QWEN2_05B, **TINY_LM, "num_key_value_heads": 2, "bos_token_id": 0, "eos_token_id": 2}
VIDEO = "<video>"
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", START, END, CONTEXT, VIDEO)
# The names transformers' InternVLProcessor reads from the tokenizer (`extra_special_tokens`).
NAMED = {"start_image_token": START, "end_image_token": END, "context_image_token": CONTEXT, "video_token": VIDEO}
TOKENS = FamilyTokens(image=CONTEXT, before=START, after=END, special=SPECIAL, eos="<|im_end|>",
                      pad="<|endoftext|>", named=NAMED, chat_template=CHAT_TEMPLATE)


@dataclass(frozen=True)
class Conversation:
    """An original InternVL conversation template of the MPT separator style: the prompt is
    `system_template(system_message) + sep + user_role + question + sep + assistant_role`."""

    name: str
    system_message: str
    sep: str
    system_template: str = "<|im_start|>system\n{system_message}"
    roles: tuple[str, str] = ("<|im_start|>user\n", "<|im_start|>assistant\n")

    def prompt(self, question: str) -> str:
        system = self.system_template.format(system_message=self.system_message)
        return system + self.sep + self.roles[0] + question + self.sep + self.roles[1]


_OLD_SYSTEM = ("你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，"
               "英文名叫InternVL, 是一个有用无害的人工智能助手。")
# OpenGVLab/InternVL internvl_chat/internvl/conversation.py (the ChatML templates of the 1B-8B models).
CONVERSATIONS = {c.name: c for c in (
    Conversation("Hermes-2", _OLD_SYSTEM, "<|im_end|>"),
    Conversation("internlm2-chat", _OLD_SYSTEM, "<|im_end|>"),
    Conversation("internvl2_5", "你是书生·万象，英文名是InternVL，"
                 "是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。", "<|im_end|>\n"),
)}


def checkpoint_conversation(name: str, source: str | None) -> Conversation:
    """The template `name` as the checkpoint's own `conversation.py` defines it (its system
    message and separator read from the parsed source, never executed), else InternVL's."""
    if source:
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            if isinstance(kw.get("name"), ast.Constant) and kw["name"].value == name:
                try:
                    return Conversation(name, ast.literal_eval(kw["system_message"]), ast.literal_eval(kw["sep"]))
                except (KeyError, ValueError):
                    break  # not literal: InternVL's own definition below
    if name not in CONVERSATIONS:
        raise ValueError(f"internvl: unknown conversation template {name!r}; known: {', '.join(CONVERSATIONS)}")
    return CONVERSATIONS[name]

@VLMS.register("internvl")
class InternVLAnswerer(Answerer):
    connector = "internvl"
    encoder, strategy = "internvit_300m", "internvl_dynamic"
    keymap = LM_KEYMAP
    presets: ClassVar[dict[str, dict[str, Any]]] = {"full": QWEN2_05B, "tiny": QWEN2_TINY}
    hf_id = "OpenGVLab/InternVL3-1B-hf"
    tokens = TOKENS
    # VLMEvalKit's `InternVLChat` (version V2.0: InternVL2, 2.5 and 3) builds its own prompts
    toolkit_styles: ClassVar[dict[str, str]] = {"vlmevalkit": "internvl"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conversation: Conversation | None = None
        if self.checkpoint is not None:
            config = self.checkpoint.config_json()
            name = config.get("template")
            if name:  # the original layout: model.chat's prompt and stop token
                path = self.checkpoint.folder / "conversation.py"
                self.conversation = checkpoint_conversation(name, path.read_text() if path.is_file() else None)
                system = config.get("system_message")
                if system is not None:  # InternVLChatModel takes the config's over the template's
                    if not isinstance(system, str):
                        raise ValueError(f"{self.checkpoint.folder / 'config.json'}: system_message is {system!r}; "
                                         "expected text")
                    self.conversation = replace(self.conversation, system_message=system)
                self.template = None
                self.eos_ids = {self.tokenizer.convert_tokens_to_ids(self.conversation.sep.strip())}

    def render(self, text: str) -> str:
        if self.conversation is None:
            return super().render(text)
        return self.conversation.prompt(LEGACY + "\n" + text)

    def expand(self, prompt: str, n_visual: int) -> str:
        """The older templates' `<image>` is expanded as `<IMG_CONTEXT>` is."""
        if prompt.count(CONTEXT) != 1 and prompt.count(LEGACY) == 1:
            prompt = prompt.replace(LEGACY, CONTEXT)
        return super().expand(prompt, n_visual)
