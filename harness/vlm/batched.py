"""Answering an image's questions together: the prompts' common prefix (chat-template text and
the image's positions) prefilled once, its KV cache forked per batch, each batch's suffixes
prefilled left-padded and decoded greedily together. Every answer equals `Answerer.answer`'s
token for token (tests/test_vlm_batched.py; docs/vlm_speed.md).

Padding sits between the shared prefix and each suffix (left padding of the suffixes): the
attention mask holds zeros there and position ids are computed from the mask, as `generate`
does, so every row sees exactly its own prompt at its own positions. A family's position hook
(`Answerer.positions`) may give its own prefill positions (`[n, 1, L]`) and a decode offset
per question; they are placed on the same grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from harness.metrics.memory import release_cached_memory

if TYPE_CHECKING:  # the answerer calls this module, never the other way at import time
    from harness.vlm.base import Answer, Answerer, Prompt


@dataclass
class Question:
    """One prompt to answer: where its result goes, its embeddings and positions."""

    index: int
    prompt: Prompt
    embeds: torch.Tensor  # [L, D]
    positions: torch.Tensor | None  # [n, 1, L] from the family's hook, None: plain 1-D positions
    offset: int

    @property
    def length(self) -> int:
        return int(self.embeds.shape[0])


@dataclass
class Prefix:
    """The shared prefix's KV cache (batch 1) and what computing it cost."""

    length: int
    cache: Any
    ms: float


def common_prefix(ids: list[torch.Tensor]) -> int:
    """Length of the longest common token prefix, keeping at least one token of every prompt
    out of it (the last prompt token's logits give the first answer token)."""
    shortest = min(int(t.numel()) for t in ids)
    first = ids[0][:shortest]
    same = torch.ones(shortest, dtype=torch.bool)
    for t in ids[1:]:
        same &= t[:shortest] == first
    differ = (~same).nonzero()
    n = int(differ[0]) if differ.numel() else shortest
    return min(n, shortest - 1)


def fork(cache: Any, batch: int) -> Any:
    """A new cache whose every row holds `cache`'s single row: expanded views, no copy (the
    first update concatenates into new tensors); `cache` itself is left as it was."""
    out = _shallow(cache)
    out.layers = []
    for layer in cache.layers:
        new = _shallow(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            new.keys = layer.keys.expand(batch, *layer.keys.shape[1:])
            new.values = layer.values.expand(batch, *layer.values.shape[1:])
        out.layers.append(new)
    return out


def _shallow(obj: Any) -> Any:
    """A new object of the same class sharing `obj`'s attributes (what copy.copy does, without
    its generic reduce protocol)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


@torch.inference_mode()
def answer_together(answerer: Answerer, visual: torch.Tensor, texts: list[str], *,
                    layout: Any = None) -> list[Answer | Exception]:
    """`Answerer.answer_many`'s engine (see the module docstring). A question that cannot be
    prompted fails alone; a batch that fails is retried one question at a time, so only the
    question that fails gets an exception."""
    results: list[Answer | Exception | None] = [None] * len(texts)
    questions: list[Question] = []
    for k, text in enumerate(texts):
        try:
            prompt = answerer.tokenize(text, int(visual.shape[0]))
            positions, offset = answerer.positions(prompt, layout)
            questions.append(Question(k, prompt, answerer.embed(prompt, visual)[0], positions, int(offset)))
        except Exception as exc:  # noqa: BLE001 - this question only
            results[k] = exc
    prefix = None
    if answerer.share_prefix and questions:
        try:
            prefix = prefill_prefix(answerer, questions)
        except Exception:  # noqa: BLE001 - the questions are then prefilled whole, each failing on its own
            prefix = None
        if prefix is None:
            release_cached_memory(answerer.runtime.device)
    step = answerer.batch_questions
    for start in range(0, len(questions), step):
        batch = questions[start:start + step]
        retry = False
        try:
            answers = answer_batch(answerer, batch, prefix, len(questions), int(visual.shape[0]))
        except Exception as exc:  # noqa: BLE001 - isolate the failing question
            if len(batch) == 1:
                results[batch[0].index] = exc
                continue
            retry = True
        if retry:  # outside the except block: the failed batch's tensors are gone
            release_cached_memory(answerer.runtime.device)
            answers = []
            for q in batch:
                try:
                    answers += answer_batch(answerer, [q], prefix, len(questions), int(visual.shape[0]))
                except Exception as one:  # noqa: BLE001
                    results[q.index] = one
            batch = [q for q in batch if results[q.index] is None]
        for q, a in zip(batch, answers, strict=True):
            results[q.index] = a
    return [r if r is not None else RuntimeError("not answered") for r in results]


def prefill_prefix(answerer: Answerer, questions: list[Question]) -> Prefix | None:
    """Prefill the questions' common prefix once (None when it is empty)."""
    n = common_prefix([q.prompt.ids for q in questions])
    if n < 1:
        return None
    rt = answerer.runtime
    first = questions[0]
    rt.synchronize()
    t0 = time.perf_counter()
    extra = {} if first.positions is None else {"position_ids": first.positions[..., :n].to(rt.device)}
    mask = torch.ones((1, n), dtype=torch.long, device=rt.device)
    out = answerer.lm(inputs_embeds=first.embeds[None, :n], attention_mask=mask, use_cache=True,
                      logits_to_keep=1, **extra)
    rt.synchronize()
    return Prefix(n, cache_of(out), (time.perf_counter() - t0) * 1e3)


def answer_batch(answerer: Answerer, batch: list[Question], prefix: Prefix | None, sharing: int,
                 visual_tokens: int) -> list[Answer]:
    """Prefill the batch's suffixes (after the shared prefix) and decode them together. Timings
    per answer: the prefix's prefill divided among the `sharing` questions that use it, the
    batch's prefill and decode divided among its questions."""
    rt, lm = answerer.runtime, answerer.lm
    device = rt.device
    shared = prefix.length if prefix is not None else 0
    rows = len(batch)
    suffix = [q.length - shared for q in batch]
    width = max(suffix)
    rt.synchronize()
    t0 = time.perf_counter()
    embeds = torch.zeros((rows, width, batch[0].embeds.shape[-1]), dtype=batch[0].embeds.dtype, device=device)
    mask = torch.ones((rows, shared + width + answerer.max_new_tokens), dtype=torch.long, device=device)
    for r, (q, n) in enumerate(zip(batch, suffix, strict=True)):
        embeds[r, width - n:] = q.embeds[shared:]
        mask[r, shared:shared + width - n] = 0
    positions = prefill_positions(batch, mask[:, :shared + width], shared, width)
    cache = fork(prefix.cache, rows) if prefix is not None else None
    cache_arg = {answerer._cache_arg: cache} if cache is not None else {}
    out = lm(inputs_embeds=embeds, attention_mask=mask[:, :shared + width], position_ids=positions,
             use_cache=True, logits_to_keep=1, **cache_arg)
    tokens = out.logits[:, -1].argmax(-1)
    rt.synchronize()
    t1 = time.perf_counter()
    cache = cache_of(out)
    generated: list[list[int]] = [[int(t)] for t in tokens.tolist()]
    # each row's next position: its prompt length + its offset, then one more per step
    next_pos = torch.tensor([q.length + q.offset for q in batch], device=device)
    dims = None if batch[0].positions is None else int(batch[0].positions.shape[0])
    alive = torch.arange(rows, device=device)  # batch rows still decoding, as cache rows
    length = shared + width
    while True:
        done = [len(generated[r]) >= answerer.max_new_tokens or generated[r][-1] in answerer.eos_ids
                for r in alive.tolist()]
        if all(done):
            break
        if any(done):  # finished questions leave the batch
            keep = torch.tensor([i for i, d in enumerate(done) if not d], device=device)
            cache.batch_select_indices(keep)
            alive, tokens, next_pos, mask = alive[keep], tokens[keep], next_pos[keep], mask[keep]
        length += 1
        step_pos = next_pos[:, None] if dims is None else next_pos[None, :, None].expand(dims, -1, 1)
        out = lm(input_ids=tokens[:, None], attention_mask=mask[:, :length], position_ids=step_pos,
                 use_cache=True, **{answerer._cache_arg: cache})
        cache = cache_of(out)
        tokens = out.logits[:, -1].argmax(-1)
        next_pos = next_pos + 1
        for r, t in zip(alive.tolist(), tokens.tolist(), strict=True):
            generated[r].append(int(t))
    rt.synchronize()
    t2 = time.perf_counter()
    prefill = (prefix.ms / sharing if prefix is not None else 0.0) + (t1 - t0) * 1e3 / rows
    decode = (t2 - t1) * 1e3 / rows
    return [answerer.finish(q.prompt, generated[r], visual_tokens, prefill, decode, prefix_tokens_shared=shared)
            for r, q in enumerate(batch)]


def prefill_positions(batch: list[Question], mask: torch.Tensor, shared: int, width: int) -> torch.Tensor:
    """Position ids of the suffixes `[rows, width]` (or `[n, rows, width]` from the family's
    hook): from the attention mask as `generate` computes them (cumsum - 1, pads at 0), or the
    hook's ids after the prefix, right-aligned."""
    if batch[0].positions is None:
        pos = mask.long().cumsum(-1) - 1
        pos = pos.masked_fill(mask == 0, 0)
        return pos[:, shared:]
    dims = int(batch[0].positions.shape[0])
    pos = torch.zeros((dims, len(batch), width), dtype=torch.long, device=mask.device)
    for r, q in enumerate(batch):
        assert q.positions is not None
        tail = q.positions[:, 0, shared:].to(mask.device)
        pos[:, r, width - tail.shape[-1]:] = tail
    return pos


def cache_of(output: Any) -> Any:
    """The KV cache a forward returned (`cache` from transformers 5.2x, `past_key_values` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
