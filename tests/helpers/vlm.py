"""The VLM equivalence checks every family's test shares: transformers' processor + greedy
`generate` as the reference, and our encoder x strategy x answerer against it; and what the
answering-together tests share (lively random weights, a grid layout, answer comparison)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.runtime import Runtime
from harness.types import Layout
from harness.vlm import VLMS
from harness.vlm.base import Answer

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


# --- answering together (tests/test_vlm_batched.py, tests/test_cuda.py) ---
# questions of different lengths, sharing their first words or not
TOGETHER = (
    "Is there a red square in this image? Please answer yes or no.",
    "Is it blue?",
    "Is there a big blue circle on the left of the picture, next to the small house? Please answer yes or no.",
    "Is there a red circle in this image? Please answer yes or no.",
    "Hm?",
)
SAME = ("prompt", "response", "visual_tokens", "prompt_tokens", "new_tokens", "kv_cache_mb",
        "token_ids")


def grid_layout(rows: int, cols: int) -> Layout:
    """One view of rows x cols merged 28 px tokens: what Qwen2.5-VL's positions read (the
    other families ignore the layout)."""
    w, h = 28 * cols, 28 * rows
    return Layout(strategy="test", original_size=(w, h), tile_size=28, grid=(1, 1), resized_size=(w, h),
                  canvas_size=(w, h), content_box=(0, 0, w, h), has_global=False, global_position=None,
                  n_views=1, executed_views=1, view_size=(w, h))


def visual_for(answerer, tokens: int = 40, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(tokens, answerer.config.hidden_size)


def lively_module(module: torch.nn.Module) -> torch.nn.Module:
    """Wider random weights (std 0.15 instead of the init's 0.02, with which the tiny Qwen2
    repeats one token whatever the prompt): answers then depend on the question, so equal
    answers say something."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.15)
    return module


def lively(answerer):
    lively_module(answerer.lm)
    return answerer


def same_answers(got: list, want: list[Answer]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, Answer), g
        for name in SAME:
            assert getattr(g, name) == getattr(w, name), (name, w.prompt)
