"""Answering an image's questions together: the first question prefilled whole, as the
one-at-a-time path does, and the prompts' common prefix (chat-template text and the image's
positions) taken from its KV cache; that prefix forked per batch, the other questions' suffixes
prefilled left-padded, and every row decoded greedily together. Every answer equals `Answerer.answer`'s
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
    """The questions' common prefix: its KV cache (batch 1, views into the lead's) and what
    computing it cost. The lead question (the first) is prefilled whole in that same forward,
    as `Answerer.answer` prefills it, so its first token is known and it needs no suffix
    prefill of its own."""

    length: int
    cache: Any
    ms: float
    lead: Question
    lead_cache: Any
    lead_token: int


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


def fork(cache: Any, batch: int, length: int | None = None) -> Any:
    """A new cache whose every row holds `cache`'s single row (its first `length` positions):
    expanded views, no copy (the first update concatenates into new tensors); `cache` itself is
    left as it was."""
    out = _shallow(cache)
    out.layers = []
    for layer in cache.layers:
        new = _shallow(layer)
        if _filled(layer):
            _hold(new, *(t[:, :, :length].expand(batch, -1, -1, -1) for t in (layer.keys, layer.values)))
        out.layers.append(new)
    return out


def merge(lead: Any, rest: Any, width: int) -> Any:
    """One cache: the lead's row on top of the other rows, every row padded at its end to
    `width` positions. Keys are cached with their rotary positions applied, so where a key sits
    does not matter; the attention mask hides the padding."""
    def padded(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[2]))

    out = _shallow(rest)
    out.layers = []
    for mine, theirs in zip(lead.layers, rest.layers, strict=True):
        new = _shallow(theirs)
        if _filled(theirs):
            _hold(new, torch.cat([padded(mine.keys), padded(theirs.keys)]),
                  torch.cat([padded(mine.values), padded(theirs.values)]))
        out.layers.append(new)
    return out


def _filled(layer: Any) -> bool:
    return getattr(layer, "keys", None) is not None and layer.keys.numel() > 0


def _hold(layer: Any, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Give a (copied) cache layer new keys and values; a sliding-window layer also counts the
    positions it holds."""
    layer.keys, layer.values = keys, values
    if hasattr(layer, "cumulative_length"):
        layer.cumulative_length = int(keys.shape[2])


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
    """Prefill the first question whole, exactly as `Answerer.answer` does, and keep its cache:
    the questions' common prefix is the start of it (None when that prefix is empty)."""
    n = common_prefix([q.prompt.ids for q in questions])
    if n < 1:
        return None
    rt = answerer.runtime
    lead = questions[0]
    rt.synchronize()
    t0 = time.perf_counter()
    extra = {} if lead.positions is None else {"position_ids": lead.positions.to(rt.device)}
    mask = torch.ones((1, lead.length), dtype=torch.long, device=rt.device)
    out = answerer.lm(inputs_embeds=lead.embeds[None], attention_mask=mask, use_cache=True, logits_to_keep=1,
                      **extra)
    token = int(out.logits[0, -1].argmax())
    rt.synchronize()
    cache = cache_of(out)
    return Prefix(n, fork(cache, 1, n), (time.perf_counter() - t0) * 1e3, lead, cache, token)


def answer_batch(answerer: Answerer, batch: list[Question], prefix: Prefix | None, sharing: int,
                 visual_tokens: int) -> list[Answer]:
    """Prefill the batch's suffixes (after the shared prefix; the lead's came with the prefix)
    and decode them together. Timings per answer: the prefix's prefill divided among the
    `sharing` questions that use it, the batch's prefill and decode divided among its
    questions."""
    rt = answerer.runtime
    device = rt.device
    shared = prefix.length if prefix is not None else 0
    led = prefix is not None and batch[0] is prefix.lead
    rt.synchronize()
    t0 = time.perf_counter()
    if not led:
        tokens, cache, mask = prefill_suffixes(answerer, batch, prefix)
    else:  # the lead's prompt is in its cache already
        assert prefix is not None
        tokens = torch.tensor([prefix.lead_token], device=device)
        cache = fork(prefix.lead_cache, 1)  # a fresh shell: a retried lead starts from its prompt again
        mask = torch.ones((1, prefix.lead.length), dtype=torch.long, device=device)
        if len(batch) > 1:
            rest_tokens, rest_cache, rest_mask = prefill_suffixes(answerer, batch[1:], prefix)
            width = max(mask.shape[1], rest_mask.shape[1])
            cache = merge(cache, rest_cache, width)
            mask = torch.cat([_pad_end(mask, width), _pad_end(rest_mask, width)])
            tokens = torch.cat([tokens, rest_tokens])
    rt.synchronize()
    t1 = time.perf_counter()
    generated = decode(answerer, batch, tokens, cache, mask)
    rt.synchronize()
    t2 = time.perf_counter()
    rows = len(batch)
    prefill = (prefix.ms / sharing if prefix is not None else 0.0) + (t1 - t0) * 1e3 / rows
    decode_ms = (t2 - t1) * 1e3 / rows
    return [answerer.finish(q.prompt, generated[r], visual_tokens, prefill, decode_ms, prefix_tokens_shared=shared)
            for r, q in enumerate(batch)]


def prefill_suffixes(answerer: Answerer, batch: list[Question],
                     prefix: Prefix | None) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Prefill each question's tokens after the shared prefix, right-aligned in one batch on
    copies of the prefix's cache: the first tokens, the cache and the 2-D attention mask."""
    device = answerer.runtime.device
    shared = prefix.length if prefix is not None else 0
    rows = len(batch)
    suffix = [q.length - shared for q in batch]
    width = max(suffix)
    embeds = torch.zeros((rows, width, batch[0].embeds.shape[-1]), dtype=batch[0].embeds.dtype, device=device)
    mask = torch.ones((rows, shared + width), dtype=torch.long, device=device)
    for r, (q, n) in enumerate(zip(batch, suffix, strict=True)):
        embeds[r, width - n:] = q.embeds[shared:]
        mask[r, shared:shared + width - n] = 0
    positions = prefill_positions(batch, mask, shared, width)
    cache_arg = {answerer._cache_arg: fork(prefix.cache, rows)} if prefix is not None else {}
    out = answerer.lm(inputs_embeds=embeds, attention_mask=attention_mask(answerer, mask, width, holes=True),
                      position_ids=positions, use_cache=True, logits_to_keep=1, **cache_arg)
    return out.logits[:, -1].argmax(-1), cache_of(out), mask


def decode(answerer: Answerer, batch: list[Question], tokens: torch.Tensor, cache: Any,
           mask: torch.Tensor) -> list[list[int]]:
    """Greedy decoding of the batch's rows together from their first tokens; a row leaves the
    batch at EOS or at `max_new_tokens`."""
    device = answerer.runtime.device
    lm = answerer.lm
    generated: list[list[int]] = [[int(t)] for t in tokens.tolist()]
    # each row's next position: its prompt length + its offset, then one more per step
    next_pos = torch.tensor([q.length + q.offset for q in batch], device=device)
    dims = None if batch[0].positions is None else int(batch[0].positions.shape[0])
    holes = [not bool(row.all()) for row in mask.bool().cpu()]  # rows with hidden positions
    length = int(mask.shape[1])
    mask = torch.cat([mask, mask.new_ones((mask.shape[0], answerer.max_new_tokens))], dim=1)
    alive = list(range(len(batch)))  # batch rows still decoding, in cache-row order
    while True:
        done = [len(generated[r]) >= answerer.max_new_tokens or generated[r][-1] in answerer.eos_ids
                for r in alive]
        if all(done):
            break
        if any(done):  # finished questions leave the batch
            left = [i for i, d in enumerate(done) if not d]
            keep = torch.tensor(left, device=device)
            cache.batch_select_indices(keep)
            tokens, next_pos, mask = tokens[keep], next_pos[keep], mask[keep]
            alive, holes = [alive[i] for i in left], [holes[i] for i in left]
        length += 1
        step_pos = next_pos[:, None] if dims is None else next_pos[None, :, None].expand(dims, -1, 1)
        out = lm(input_ids=tokens[:, None], attention_mask=attention_mask(answerer, mask[:, :length], 1, any(holes)),
                 position_ids=step_pos, use_cache=True, **{answerer._cache_arg: cache})
        cache = cache_of(out)
        tokens = out.logits[:, -1].argmax(-1)
        next_pos = next_pos + 1
        for r, t in zip(alive, tokens.tolist(), strict=True):
            generated[r].append(int(t))
    return generated


def attention_mask(answerer: Answerer, mask: torch.Tensor, queries: int, holes: bool) -> torch.Tensor:
    """What the LM gets for `queries` new positions at the end of the 2-D `mask` `[B, K]`.
    With sdpa and no sliding window: the 4-D mask transformers' sdpa path builds from it
    (padding and causal), built here in a few tensor operations instead of its per-call mask
    machinery, and additive (0 or -inf in the model's dtype: what sdpa turns a boolean mask
    into in every layer, done once). Else, or when nothing is hidden (transformers then gives
    sdpa no mask at all, as for `Answerer.answer`), the 2-D mask itself."""
    if not holes or not direct_masks(answerer.config):
        return mask
    keys = mask.shape[1]
    allowed = mask.bool()[:, None, None, :]
    if queries > 1:
        at = torch.arange(keys, device=mask.device)
        allowed = allowed & (at[None, :] <= at[keys - queries:, None])
    additive = torch.zeros(allowed.shape, dtype=answerer.runtime.dtype, device=mask.device)
    return additive.masked_fill_(~allowed, -torch.inf)


def direct_masks(config: Any) -> bool:
    """Whether a ready 4-D mask may be handed to the model, which then uses it as it is: sdpa
    attention (eager would want its own form) and no layer with a sliding window (the window
    would be missing from it)."""
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    sliding = "sliding_attention" in (getattr(config, "layer_types", None) or [])
    return getattr(config, "_attn_implementation", None) == "sdpa" and window is None and not sliding


def _pad_end(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(mask, (0, width - mask.shape[1]))


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
