"""Transcription of Phi-3-vision's remote code (`microsoft/Phi-3-vision-128k-instruct`,
`processing_phi3_v.py` and `image_embedding_phi3_v.py`), the parts that place image features in
the language model's input: the processor's id merge and the embedding layer's overwrite."""

from __future__ import annotations

import re

import torch

MAX_INPUT_ID = int(1e9)


def processor_input_ids(tokenizer, texts: str, num_img_tokens: list[int]) -> torch.Tensor:
    """Phi3VProcessor._convert_images_texts_to_inputs (text part)."""
    pattern = r"<\|image_\d+\|>"
    prompt_chunks = [tokenizer(chunk).input_ids for chunk in re.split(pattern, texts)]
    image_tags = re.findall(pattern, texts)
    image_ids = [int(s.split("|")[1].split("_")[-1]) for s in image_tags]
    unique_image_ids = sorted(set(image_ids))
    assert unique_image_ids == list(range(1, len(unique_image_ids) + 1))
    image_ids_pad = [[-iid] * num_img_tokens[iid - 1] for iid in image_ids]

    def insert_separator(x, sep_list):
        if len(x) > len(sep_list):
            sep_list.append([])
        return [ele for sublist in zip(x, sep_list, strict=False) for ele in sublist]

    input_ids = []
    offset = 0
    for x in insert_separator(prompt_chunks, image_ids_pad):
        input_ids.extend(x[offset:])
    return torch.tensor(input_ids, dtype=torch.long).unsqueeze(0)


def image_embedding(wte: torch.nn.Embedding, input_ids: torch.Tensor, img_set_tensor: list[torch.Tensor],
                    vocab_size: int) -> torch.Tensor:
    """Phi3ImageEmbedding.forward after the HD transform: positions of negative ids, token
    embeddings of the clamped ids, image features written over the positions, image by image."""
    input_shape = input_ids.size()
    input_ids = input_ids.view(-1, input_shape[-1]).clone()
    positions = torch.nonzero((input_ids < 0) & (input_ids > -MAX_INPUT_ID), as_tuple=False)
    num_img_tokens = [t.shape[0] for t in img_set_tensor]
    input_ids.clamp_min_(0).clamp_max_(vocab_size)
    hidden_states = wte(input_ids)
    idx = 0
    for i, cnt in enumerate(num_img_tokens):
        hidden_states[positions[idx: idx + cnt, 0], positions[idx: idx + cnt, 1]] = (
            img_set_tensor[i].to(hidden_states.dtype).to(hidden_states.device))
        idx += cnt
    return hidden_states
