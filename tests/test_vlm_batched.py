"""An image's questions answered together (shared prefix prefilled once, batched decoding with
left padding) equal the one-at-a-time reference `Answerer.answer` token for token, for every
registered family, questions of different lengths, rows that stop at different steps, every
combination of the two options; a question that fails fails alone; the options are checked
before loading, recorded as columns and kept out of the resume key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.config import ConfigError, compose
from harness.pipeline.execute import execute
from harness.pipeline.job import prepare_job
from harness.runtime import Runtime
from harness.vlm import VLMS
from harness.vlm.batched import attention_mask, cache_of, common_prefix, direct_masks, fork, merge
from tests.helpers.data import mme_images, write_mme_parquet
from tests.helpers.vlm import TOGETHER as QUESTIONS
from tests.helpers.vlm import grid_layout, lively, lively_module, same_answers, visual_for

CPU = Runtime.resolve("cpu", "float32")
MODES = [(8, True), (2, True), (1, True), (8, False), (3, False)]  # (batch_questions, share_prefix)
ANSWER_COLUMNS = ("question_id", "question_index", "category", "question", "answer", "status", "prompt", "response",
                  "prediction", "visual_tokens", "prompt_tokens", "new_tokens", "kv_cache_mb")


def shared_by_hand(ids: list[list[int]]) -> int:
    """The common prefix, one token of the shortest prompt kept out, by plain iteration."""
    n = 0
    while all(n < len(i) for i in ids) and len({i[n] for i in ids}) == 1:
        n += 1
    return min(n, min(len(i) for i in ids) - 1)


def stopping_token(answers: list[list[int]]) -> int:
    """A generated token that, made the EOS, stops the answers at the most different steps."""
    def lengths(t: int) -> set[int]:
        return {a.index(t) + 1 if t in a else len(a) for a in answers}

    return max(sorted({t for a in answers for t in a}), key=lambda t: len(lengths(t)))


@pytest.mark.parametrize("family", VLMS.names())
def test_together_equals_one_at_a_time(family: str) -> None:
    answerer = lively(VLMS.get(family)(runtime=CPU, max_new_tokens=8))
    visual, view = visual_for(answerer), grid_layout(5, 8)  # 40 tokens
    answerer.eos_ids = {stopping_token([answerer.answer(visual, q, layout=view).token_ids for q in QUESTIONS])}
    want = [answerer.answer(visual, q, layout=view) for q in QUESTIONS]
    assert len({w.new_tokens for w in want}) > 1, [w.token_ids for w in want]  # rows stop at different steps
    assert len({tuple(w.token_ids) for w in want}) > 2  # and answer differently
    ids = [answerer.tokenize(q, len(visual)).ids.tolist() for q in QUESTIONS]
    prefix = shared_by_hand(ids)
    assert prefix >= len(visual)  # the image's positions are in the shared part
    for batch, share in MODES:
        answerer.batch_questions, answerer.share_prefix = batch, share
        got = answerer.answer_many(visual, list(QUESTIONS), layout=view)
        same_answers(got, want)
        assert [g.prefix_tokens_shared for g in got] == [prefix if share else 0] * len(QUESTIONS)
        assert all(g.prefill_ms > 0 and g.decode_ms >= 0 for g in got)


def test_together_with_one_question_and_with_identical_questions() -> None:
    answerer = lively(VLMS.get("llava_next")(runtime=CPU, max_new_tokens=5))
    visual = visual_for(answerer, 30, seed=3)
    want = answerer.answer(visual, QUESTIONS[0])
    one = answerer.answer_many(visual, [QUESTIONS[0]])
    same_answers(one, [want])
    twice = answerer.answer_many(visual, [QUESTIONS[0], QUESTIONS[0]])
    same_answers(twice, [want, want])  # the whole prompt is common: its last token is still prefilled per row
    assert twice[0].prefix_tokens_shared == want.prompt_tokens - 1


def test_common_prefix_hand_examples() -> None:
    t = torch.tensor
    assert common_prefix([t([1, 2, 3, 4]), t([1, 2, 5])]) == 2
    assert common_prefix([t([1, 2, 3]), t([1, 2, 3])]) == 2  # one token kept out of the prefix
    assert common_prefix([t([1, 2, 3]), t([1, 2, 3, 4])]) == 2
    assert common_prefix([t([7, 2]), t([1, 2])]) == 0
    assert common_prefix([t([1, 2, 3])]) == 2


def test_fork_leaves_the_prefix_cache_as_it_was() -> None:
    answerer = VLMS.get("internvl")(runtime=CPU)
    embeds = torch.randn(1, 6, answerer.config.hidden_size)
    with torch.inference_mode():
        out = answerer.lm(inputs_embeds=embeds, use_cache=True)
    cache = cache_of(out)
    before = [layer.keys.clone() for layer in cache.layers]
    forked = fork(cache, 3)
    with torch.inference_mode():
        answerer.lm(inputs_embeds=torch.randn(3, 2, embeds.shape[-1]), use_cache=True,
                    **{answerer._cache_arg: forked})
    assert forked.get_seq_length() == 8 and forked.layers[0].keys.shape[0] == 3
    assert cache.get_seq_length() == 6
    for b, layer in zip(before, cache.layers, strict=True):
        assert torch.equal(b, layer.keys)
        assert torch.equal(b[0], forked.layers[0].keys[2, :, :6]) or layer is not cache.layers[0]


def test_together_equals_one_at_a_time_when_transformers_builds_the_masks() -> None:
    """Eager attention takes no ready-made 4-D boolean mask: the engine hands the 2-D mask to
    transformers, and the answers are still the one-at-a-time ones."""
    answerer = lively(VLMS.get("llava_next")(runtime=CPU, max_new_tokens=6, attn="eager"))
    assert not direct_masks(answerer.config) and direct_masks(VLMS.get("llava_next")(runtime=CPU).config)
    visual = visual_for(answerer, 24, seed=2)
    want = [answerer.answer(visual, q) for q in QUESTIONS]
    for batch, share in MODES:
        answerer.batch_questions, answerer.share_prefix = batch, share
        same_answers(answerer.answer_many(visual, list(QUESTIONS)), want)


def test_attention_mask_is_the_one_transformers_builds() -> None:
    """The engine's own 4-D mask equals transformers' sdpa mask for the same 2-D mask (padding
    and causal, the queries at the end of the keys), made additive as sdpa makes it."""
    from transformers.masking_utils import sdpa_mask

    answerer = VLMS.get("internvl")(runtime=CPU)
    mask = torch.ones((3, 11), dtype=torch.long)
    mask[0, 4:6] = 0  # a row with padding between its prefix and its suffix
    mask[1, 9:] = 0  # and one padded at its end (the lead's row of a merged batch)
    for queries in (1, 4):
        want = sdpa_mask(batch_size=3, q_length=queries, kv_length=11, q_offset=11 - queries,
                         attention_mask=mask.bool(), allow_is_causal_skip=False)
        got = attention_mask(answerer, mask, queries, holes=True)
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert torch.equal(got == 0, want) and bool(torch.isinf(got[~want]).all())
    assert attention_mask(answerer, mask, 1, holes=False) is mask  # nothing hidden: transformers decides


def test_fork_crops_and_merge_pads_each_row() -> None:
    answerer = VLMS.get("internvl")(runtime=CPU)
    d = answerer.config.hidden_size
    with torch.inference_mode():
        lead = cache_of(answerer.lm(inputs_embeds=torch.randn(1, 7, d), use_cache=True))
        rest = cache_of(answerer.lm(inputs_embeds=torch.randn(2, 5, d), use_cache=True))
    crop = fork(lead, 2, 4)
    assert crop.get_seq_length() == 4 and crop.layers[0].keys.shape[0] == 2
    assert torch.equal(crop.layers[0].keys[1], lead.layers[0].keys[0, :, :4]) and lead.get_seq_length() == 7
    both = merge(lead, rest, 9)
    for mine, theirs, got in zip(lead.layers, rest.layers, both.layers, strict=True):
        assert got.keys.shape[:3] == (3, mine.keys.shape[1], 9)
        assert torch.equal(got.keys[0, :, :7], mine.keys[0]) and not got.keys[0, :, 7:].any()
        assert torch.equal(got.values[1:, :, :5], theirs.values) and not got.values[1:, :, 5:].any()


@pytest.mark.parametrize("batch,share", [(8, True), (8, False), (1, True)])
def test_a_failing_question_fails_alone(batch: int, share: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    answerer = lively(VLMS.get("phi3_vision")(runtime=CPU, max_new_tokens=4, batch_questions=batch,
                                              share_prefix=share))
    visual = visual_for(answerer, 24)
    want = [answerer.answer(visual, q) for q in QUESTIONS]
    real = answerer.tokenize

    def tokenize(question: str, n_visual: int):
        if question == "bad":
            raise ValueError("cannot prompt this one")
        return real(question, n_visual)

    monkeypatch.setattr(answerer, "tokenize", tokenize)
    got = answerer.answer_many(visual, [QUESTIONS[0], "bad", *QUESTIONS[1:]])
    assert isinstance(got[1], ValueError) and "cannot prompt" in str(got[1])
    same_answers([got[0], *got[2:]], want)


def test_a_failing_batch_is_retried_one_question_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batched forward that fails (say, out of memory) costs nothing but time: each question
    is answered alone, the same tokens."""
    answerer = lively(VLMS.get("internvl")(runtime=CPU, max_new_tokens=4))
    visual = visual_for(answerer, 24)
    want = [answerer.answer(visual, q) for q in QUESTIONS]
    real = answerer.lm.forward
    batches: list[int] = []

    def forward(*args, **kwargs):
        given = kwargs.get("inputs_embeds")
        rows = (given if given is not None else kwargs["input_ids"]).shape[0]
        batches.append(rows)
        if rows > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(answerer.lm, "forward", forward)
    got = answerer.answer_many(visual, list(QUESTIONS))
    same_answers(got, want)
    assert max(batches) == len(QUESTIONS) - 1  # the batch was tried: the suffixes after the lead's whole prefill


def test_options_checked_before_loading_and_kept_out_of_the_key() -> None:
    base = ["encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random", "vlm=internvl"]
    for bad, needle in (("vlm.batch_questions=0", r"vlm.batch_questions must be an integer in \[1, 1024\]"),
                        ("vlm.batch_questions=2.5", r"vlm.batch_questions must be an integer in \[1, 1024\]"),
                        ("vlm.share_prefix=maybe", "vlm.share_prefix must be true or false")):
        with pytest.raises(ConfigError, match=needle):
            prepare_job(compose([*base, bad]))
    default = prepare_job(compose(base))
    alone = prepare_job(compose([*base, "vlm.batch_questions=1", "vlm.share_prefix=false"]))
    assert default.config_hash == alone.config_hash  # they change no answer: the same results
    columns = alone.identity("r")
    assert columns["vlm_batch_questions"] == 1 and columns["vlm_share_prefix"] is False
    assert default.identity("r")["vlm_batch_questions"] == 8


@pytest.mark.slow
def test_run_rows_equal_one_question_at_a_time(tmp_path: Path) -> None:
    """A run answering together writes the rows a one-at-a-time run writes, timings and the
    recorded options aside."""
    images = [im for im in mme_images(1) if im.category in ("existence", "OCR", "code_reasoning")]
    data = write_mme_parquet(tmp_path / "mme", images)
    base = ["encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random", "preprocess=resize",
            "vlm=internvl", "vlm.max_new_tokens=3", "progress=false", "dataset=mme", f"dataset.path={data}"]
    rows = {}
    for label, options in (("together", []), ("alone", ["vlm.batch_questions=1", "vlm.share_prefix=false"])):
        outcome = execute(prepare_job(compose([*base, f"results_dir={tmp_path / label}", *options])))
        records = pd.read_parquet(outcome.run_dir / "records.parquet")
        rows[label] = records[records.kind == "question"].sort_values(["question_id", "question_index"])
        run = records[records.kind == "run"].iloc[0]
        assert run["answers_complete"] and run["vlm_batch_questions"] == (8 if label == "together" else 1)
    together, alone = rows["together"], rows["alone"]
    assert len(together) == 2 * len(images)
    pd.testing.assert_frame_equal(together[list(ANSWER_COLUMNS)].reset_index(drop=True),
                                  alone[list(ANSWER_COLUMNS)].reset_index(drop=True))
    assert (alone["prefix_tokens_shared"] == 0).all()
    # both questions share the system text, the image's 256 positions and the words up to "item k"
    assert (together["prefix_tokens_shared"] > 256).all()
    assert (together["prefix_tokens_shared"] < together["prompt_tokens"]).all()


class MRopeLM(torch.nn.Module):
    """transformers' Qwen2.5-VL text model (3-D multimodal rotary positions) with an LM head,
    called as the answerer calls a causal LM."""

    def __init__(self, hidden: int, vocab: int) -> None:
        super().__init__()
        from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLTextModel

        config = Qwen2_5_VLTextConfig(
            hidden_size=hidden, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=vocab, attn_implementation="sdpa",
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2]})
        self.model = Qwen2_5_VLTextModel(config)
        self.lm_head = torch.nn.Linear(hidden, vocab, bias=False)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed_tokens

    def forward(self, *, cache=None, logits_to_keep: int = 0, **kwargs):
        from types import SimpleNamespace

        out = self.model(cache=cache, **kwargs)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return SimpleNamespace(logits=self.lm_head(hidden), cache=out.cache)


def mrope_positions(mask: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Qwen2-VL's `get_rope_index` for one image of `grid` (rows, cols) merged tokens: text at
    (i, i, i), the image at (s, s + row, s + col), text after it from s + max(rows, cols); the
    offset makes decoding continue after the largest position."""
    rows, cols = grid
    image = mask.nonzero()[:, 0]
    start, end = int(image[0]), int(image[-1]) + 1
    pos = torch.arange(mask.numel()).repeat(3, 1)
    k = torch.arange(rows * cols)
    pos[0, start:end] = start
    pos[1, start:end] = start + k // cols
    pos[2, start:end] = start + k % cols
    pos[:, end:] = start + max(rows, cols) + torch.arange(mask.numel() - end)
    return pos[:, None], int(pos.max()) + 1 - mask.numel()


def test_family_positions_and_offsets_are_honoured_together() -> None:
    """A family whose hook gives 3-D positions and a decode offset (Qwen2.5-VL's layout):
    together equals one at a time, and the positions matter (plain ones answer differently)."""
    answerer = VLMS.get("internvl")(runtime=CPU, max_new_tokens=6)
    torch.manual_seed(0)
    answerer.lm = lively_module(MRopeLM(answerer.config.hidden_size, answerer.config.vocab_size).eval())
    grid = (5, 8)
    visual = visual_for(answerer, grid[0] * grid[1])
    plain = [answerer.answer(visual, q).token_ids for q in QUESTIONS]
    answerer.positions = lambda prompt, layout=None: mrope_positions(prompt.image_mask, layout)  # type: ignore
    want = [answerer.answer(visual, q, layout=grid) for q in QUESTIONS]
    assert [w.token_ids for w in want] != plain
    assert mrope_positions(answerer.tokenize(QUESTIONS[0], 40).image_mask, grid)[1] < 0  # a real offset
    for batch, share in MODES:
        answerer.batch_questions, answerer.share_prefix = batch, share
        same_answers(answerer.answer_many(visual, list(QUESTIONS), layout=grid), want)


@pytest.mark.parametrize("family", [f for f in VLMS.names() if f != "phi3_vision"])  # phi3: no placeholder text
def test_spliced_image_ids_equal_tokenizing_the_expanded_prompt(family: str) -> None:
    """`token_ids` writes the image's token n times instead of tokenizing n placeholders: the
    same ids as the tokenizer on the fully expanded text."""
    answerer = VLMS.get(family)(runtime=CPU)
    for question in QUESTIONS:
        text = answerer.render(question)
        bos = answerer.tokenizer.bos_token
        add_special = not (bos is not None and text.startswith(bos))
        for n in (1, 3, 577, 2340):
            whole = answerer.tokenizer(answerer.expand(text, n), add_special_tokens=add_special)["input_ids"]
            assert answerer.token_ids(text, n).tolist() == list(whole), (question, n)
