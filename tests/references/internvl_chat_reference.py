"""Transcription of the original InternVL chat code (`OpenGVLab/InternVL`,
`internvl_chat/internvl/conversation.py` MPT style and `modeling_internvl_chat.py`
`InternVLChatModel.chat` / `generate`): the query text, its ids and the embedding merge."""

from __future__ import annotations

import torch

IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN = "<img>", "</img>", "<IMG_CONTEXT>"


def chat_query(system_message: str, sep: str, question: str, num_image_token: int, num_patches: int) -> str:
    """`chat()`: '<image>\\n' + question, the template's prompt (MPT style), the image tokens."""
    if "<image>" not in question:
        question = "<image>\n" + question
    system_template = "<|im_start|>system\n{system_message}"
    roles = ("<|im_start|>user\n", "<|im_start|>assistant\n")
    messages = [[roles[0], question], [roles[1], None]]
    ret = system_template.format(system_message=system_message) + sep
    for role, message in messages:
        if message:
            ret += role + message + sep
        else:
            ret += role
    image_tokens = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token * num_patches + IMG_END_TOKEN
    return ret.replace("<image>", image_tokens, 1)


def merged_embeds(language_model, input_ids: torch.Tensor, vit_embeds: torch.Tensor,
                  img_context_token_id: int) -> torch.Tensor:
    """`generate()`: token embeddings with the image features written at `<IMG_CONTEXT>`."""
    input_embeds = language_model.get_input_embeddings()(input_ids)
    b, n, c = input_embeds.shape
    input_embeds = input_embeds.reshape(b * n, c)
    input_ids = input_ids.reshape(b * n)
    selected = input_ids == img_context_token_id
    input_embeds[selected] = vit_embeds.reshape(-1, c).to(input_embeds.device)
    return input_embeds.reshape(b, n, c)
