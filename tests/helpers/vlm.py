"""The VLM equivalence checks every family's test shares: transformers' processor + greedy
`generate` as the reference, and our encoder x strategy x answerer against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.runtime import Runtime
from harness.vlm import VLMS

CPU = Runtime.resolve("cpu", "float32")
NEW_TOKENS = 6
QUESTIONS = ("Is there a red square in this image? Please answer yes or no.",
             "Is there a blue circle in this image? Please answer yes or no.")
TEXT = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=320)


def image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def messages(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def reference(model, processor, img: Image.Image, question: str) -> tuple[list[int], list[int], torch.Tensor]:
    """transformers: the processor's chat template and inputs, then greedy generate."""
    text = processor.apply_chat_template(messages(question), add_generation_prompt=True)
    bos = processor.tokenizer.bos_token
    inputs = processor(images=img, text=text, return_tensors="pt",
                       add_special_tokens=not (bos is not None and text.startswith(bos)))
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        out = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS)
    n = inputs["input_ids"].shape[1]
    return inputs["input_ids"][0].tolist(), out[0, n:].tolist(), logits


def check_family(model, processor, folder: Path, encoder, strategy, family: str, sizes) -> None:
    answerer = VLMS.get(family)(weights=str(folder), protocol="official", max_new_tokens=NEW_TOKENS, runtime=CPU)
    assert answerer.template == processor.chat_template
    for k, (w, h) in enumerate(sizes):
        img = image(w, h, k)
        views = strategy.apply(img)
        (out,), _ = encoder.encode([views])  # one encoding for both questions
        assert out.num_tokens == encoder.num_tokens(strategy.plan(w, h))
        for question in QUESTIONS:
            ids, new, logits = reference(model, processor, img, question)
            ans = answerer.answer(out.tokens, question, layout=views.layout, keep_logits=True)
            prompt = answerer.tokenize(question, out.num_tokens)
            assert prompt.ids.tolist() == ids
            assert ans.prompt_tokens == len(ids) and ans.visual_tokens == out.num_tokens
            torch.testing.assert_close(ans.first_logits, logits, atol=1e-4, rtol=0)
            assert ans.token_ids == new, (w, h, question)
            assert ans.new_tokens == len(new)
            assert ans.response == processor.tokenizer.decode(new, skip_special_tokens=True)
            assert ans.prompt.count(processor.image_token) == 1  # the placeholder is written once
