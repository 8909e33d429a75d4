"""An answerer: a VLM family's language model plus an evaluation protocol. It puts one image's
visual tokens `[T, D]` (from any encoder x strategy, `Encoder.encode`) at the prompt's image
positions and generates greedily with a KV cache.

A family module sets the class constants (connector, key map, presets) and declares its prompt
tokens as data (`FamilyTokens`: the image token, what the chat template writes once, what wraps
the image, the special tokens and chat template of the random-weight tokenizer); `expand`,
`image_positions` and `random_tokenizer` follow from that declaration and are overridden only by
families whose processor does something else (Phi-3-vision's negative ids). `messages` (the chat
turns of one question) defaults to transformers' processor format; `positions` (the prefill's
position ids) to plain 1-D positions (Qwen2.5-VL overrides it with its 3-D rotary positions).
Sources of each family's layout: docs/vlm_protocols.md.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedTokenizerBase

from harness.bounds import boolean, bounded_int, optional_int
from harness.encoders.weights import KeyMap
from harness.runtime import Runtime
from harness.types import Layout
from harness.vlm.batched import answer_together, cache_of
from harness.vlm.checkpoint import LMCheckpoint, build_text_config
from harness.vlm.tokenizer import byte_level_tokenizer

LM_SIZES = ("tiny", "full")
# Answers generated at most (`vlm.max_new_tokens`): MME's protocols use 16-20; far above any
# benchmark's answer, far below a context length (a larger value only allocates and waits).
MAX_NEW_TOKENS = 4096
MAX_BATCH_QUESTIONS = 1024  # questions of one image decoded together; more is a typo
# The language model's names in a transformers *ForConditionalGeneration checkpoint (LLaVA-NeXT,
# InternVL): the hub's (`language_model.model.*`, `language_model.lm_head.*`, also what
# transformers 5 saves) and the in-memory ones.
CONDITIONAL_GENERATION_LM = (
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
    ("model.language_model.", "model."),
    ("lm_head.", "lm_head."),
)
# Every family's `tiny` preset: its full architecture at this size (plus the family's own KV heads
# and token ids), 48 wide as the encoders' tiny connectors (`lm_dim["tiny"]`), with a vocabulary
# that holds the byte-level tokenizer (special tokens + 256 bytes).
TINY_LM = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=320)
# Generation length when neither vlm.max_new_tokens nor a benchmark says (jobs pass the benchmark's
# protocol limit, `Benchmark.max_new_tokens`).
DEFAULT_MAX_NEW_TOKENS = 16
# Questions of one image decoded together (`vlm.batch_questions`): POPE's six fit in one batch.
DEFAULT_BATCH_QUESTIONS = 8


@dataclass(frozen=True)
class FamilyTokens:
    """A family's prompt tokens as data. The chat template writes `placeholder` (default: `image`)
    once; the processor turns it into `before + image x T + after`; the image positions are the
    ids of `image`. `special` (id order), `bos`/`eos`/`unk`/`pad`, `add_bos`, `named` (transformers'
    `extra_special_tokens`) and `chat_template` make the random-weight tokenizer; `required` are
    the tokens a checkpoint's tokenizer must hold (default: `before`, `image`, `after`)."""

    image: str
    special: tuple[str, ...]
    eos: str
    chat_template: str
    placeholder: str | None = None
    before: str = ""
    after: str = ""
    bos: str | None = None
    unk: str | None = None
    pad: str | None = None
    add_bos: bool = False
    named: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] | None = None

    @property
    def written(self) -> str:
        return self.placeholder or self.image

    def must_hold(self) -> tuple[str, ...]:
        return self.required if self.required is not None else tuple(t for t in (self.before, self.image,
                                                                                  self.after) if t)


@dataclass
class Answer:
    """One question answered. `prompt` is the text given to the tokenizer (the chat template's
    output) with the image placeholder written once; `token_ids` the new tokens (EOS included when
    generated). The benchmark parses `response` (harness/benchmarks/)."""

    prompt: str
    response: str
    visual_tokens: int
    prompt_tokens: int
    new_tokens: int
    prefill_ms: float
    decode_ms: float
    kv_cache_mb: float
    token_ids: list[int] = field(default_factory=list)
    first_logits: torch.Tensor | None = field(default=None, repr=False)
    # prompt tokens whose keys and values came from a prefill shared with the image's other
    # questions (harness.vlm.batched); 0 when this question was prefilled on its own
    prefix_tokens_shared: int = 0


@dataclass
class Prompt:
    """A tokenized prompt: ids `[L]` and the boolean mask of its image positions."""

    text: str
    ids: torch.Tensor
    image_mask: torch.Tensor


class Answerer(ABC):
    """Base class of the VLM families (see the module docstring)."""

    name: ClassVar[str]
    connector: ClassVar[str]
    keymap: ClassVar[KeyMap]
    presets: ClassVar[dict[str, dict[str, Any]]]
    hf_id: ClassVar[str]
    tokens: ClassVar[FamilyTokens]
    # The family's own vision side: the encoder its checkpoints hold and the strategy its processor
    # runs (any encoder x strategy whose connector is `connector` can feed it).
    encoder: ClassVar[str]
    strategy: ClassVar[str]
    # protocol -> the prompt style the toolkit's wrapper of this family builds itself (its
    # `use_custom_prompt`), looked up in each benchmark's `STYLES`; a benchmark without that style,
    # or a protocol not listed, gives the toolkit's generic prompt (docs/benchmark_scoring.md §1.1).
    toolkit_styles: ClassVar[dict[str, str]] = {}

    def __init__(
        self, *, weights: str = "random", size: str = "tiny", protocol: str = "official",
        max_new_tokens: int | None = None, runtime: Runtime, attn: str = "sdpa", seed: int = 0,
        batch_questions: int = DEFAULT_BATCH_QUESTIONS, share_prefix: bool = True,
    ) -> None:
        self.check_options(weights=weights, size=size, protocol=protocol, max_new_tokens=max_new_tokens,
                           batch_questions=batch_questions, share_prefix=share_prefix)
        self.weights, self.size, self.runtime, self.attn = weights, size, runtime, attn
        self.protocol = protocol  # the toolkit whose prompts and parsers the benchmark applies
        self.max_new_tokens = int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
        # how an image's questions are answered (docs/vlm_speed.md); neither changes an answer
        self.batch_questions, self.share_prefix = int(batch_questions), bool(share_prefix)
        if weights == "random":
            self.checkpoint = None
            self.config = self.random_config(size, attn)
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(self.config)
            self.tokenizer = self.random_tokenizer()
            self.template: str | None = self.tokenizer.chat_template
            self.weights_source = "random"
            eos: list[int] = []
        else:
            self.checkpoint = self.open_checkpoint(weights)
            self.config = self.checkpoint.check(attn)
            with torch.device(runtime.device):
                model = AutoModelForCausalLM.from_config(self.config)
            self.checkpoint.load_into(model, self.config)
            self.tokenizer = self.checkpoint.tokenizer()
            self.template = self.checkpoint.chat_template(self.tokenizer)
            self.weights_source = str(self.checkpoint.folder)
            eos = self.checkpoint.generation_eos()
        self.lm = model.to(runtime.device, runtime.dtype).eval()
        # transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` before)
        self._cache_arg = "cache" if "cache" in inspect.signature(self.lm.forward).parameters else "past_key_values"
        self.eos_ids = set(eos or self._config_eos() or [self.tokenizer.eos_token_id])
        self.check_tokenizer()

    # --- to implement ---------------------------------------------------------------------
    @classmethod
    def prompt_style(cls, protocol: str) -> str | None:
        """The prompt style this family's toolkit wrapper builds itself under `protocol` (a name
        in the benchmark's `STYLES`), None when it takes the toolkit's generic prompt."""
        return cls.toolkit_styles.get(protocol)

    def messages(self, text: str) -> list[dict[str, Any]]:
        """The chat turns of one question (`text` is the benchmark's user text): one user turn, the
        image then the text, as transformers' processors take them."""
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def expand(self, prompt: str, n_visual: int) -> str:
        """The prompt with its single placeholder replaced by what the family's processor puts
        there, holding exactly `n_visual` image positions."""
        t = self.tokens
        if prompt.count(t.written) != 1:
            raise ValueError(f"{self.name}: the chat template wrote {prompt.count(t.written)} {t.written} "
                             f"placeholders, not 1")
        return prompt.replace(t.written, t.before + t.image * n_visual + t.after)

    def image_positions(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the image positions in tokenized ids."""
        return ids == self.tokenizer.convert_tokens_to_ids(self.tokens.image)

    def positions(self, prompt: Prompt, layout: Layout | None) -> tuple[torch.Tensor | None, int]:
        """Position ids of the prefill (`[3, 1, L]` for multimodal rotary positions) or None
        (the language model's own 1-D positions), and the offset of every decoded token's
        position from its cache length (0 with 1-D positions)."""
        return None, 0

    @classmethod
    def random_tokenizer(cls) -> PreTrainedTokenizerBase:
        """The family's special tokens and chat template on a byte-level vocabulary."""
        t = cls.tokens
        return byte_level_tokenizer(t.special, bos=t.bos, eos=t.eos, unk=t.unk, pad=t.pad, add_bos=t.add_bos,
                                    extra=t.named, chat_template=t.chat_template)

    def check_tokenizer(self) -> None:
        """Raise ValueError when the tokenizer lacks the family's special tokens."""
        missing = [t for t in self.tokens.must_hold() if t not in self.tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"{self.name}: the tokenizer lacks {', '.join(missing)}")

    # --- options and identity ---------------------------------------------------------------
    @classmethod
    def check_options(cls, *, weights: str = "random", size: str = "tiny", protocol: str = "official",
                      max_new_tokens: int | None = None, batch_questions: int = 1, share_prefix: bool = True,
                      **_: Any) -> None:
        if size not in LM_SIZES:
            raise ValueError(f"vlm.size must be one of {', '.join(LM_SIZES)}; got {size!r}")
        if not protocol:
            raise ValueError("vlm.protocol must name a toolkit (the benchmark lists its choices)")
        optional_int("vlm.max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)  # null: the protocol's
        bounded_int("vlm.batch_questions", batch_questions, 1, MAX_BATCH_QUESTIONS)  # 1: one at a time
        boolean("vlm.share_prefix", share_prefix)
        if not weights:
            raise ValueError("vlm.weights must be random, pretrained, a hub id or a checkpoint folder")

    @classmethod
    def open_checkpoint(cls, weights: str) -> LMCheckpoint:
        return LMCheckpoint(cls.hf_id if weights == "pretrained" else weights, cls.keymap)

    @classmethod
    def random_config(cls, size: str, attn: str = "sdpa") -> PretrainedConfig:
        return build_text_config(dict(cls.presets[size]), attn)

    @classmethod
    def hidden_size_for(cls, weights: str, size: str) -> int:
        """The LM width a connector must produce, read before any tensor is (config only)."""
        if weights == "random":
            return int(cls.random_config(size).hidden_size)
        return int(cls.open_checkpoint(weights).text_config().hidden_size)

    @classmethod
    def options(cls, **given: Any) -> dict[str, Any]:
        """Every option with the class defaults filled in (`runtime` aside)."""
        params = inspect.signature(cls).parameters.values()
        out = {p.name: p.default for p in params if p.name != "runtime" and p.default is not inspect.Parameter.empty}
        out.update(given)
        return out

    @classmethod
    def key_of(cls, options: dict[str, Any]) -> dict[str, Any]:
        """What identifies this answerer's results (the resume key's `vlm` part): the size only
        matters for random weights, a null max_new_tokens is the protocol's, and a family that
        builds its own prompts under the protocol (`toolkit_styles`) names its style."""
        random = options["weights"] == "random"
        key = {
            "name": cls.name, "weights": options["weights"], "size": options["size"] if random else None,
            "protocol": options["protocol"],
            "max_new_tokens": int(options["max_new_tokens"] or DEFAULT_MAX_NEW_TOKENS),
        }
        style = cls.prompt_style(options["protocol"])
        if style is not None:  # the family's own prompts under this toolkit: other results than the generic ones
            key["prompt_style"] = style
        return key

    @classmethod
    def describe(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Record columns of this answerer with these options (what a job says before loading).
        How questions are batched is a column but not part of the key: it changes no answer."""
        key = cls.key_of(options)
        return {"vlm": cls.name, "vlm_weights": key["weights"], "vlm_size": key["size"] or "checkpoint",
                "vlm_protocol": key["protocol"], "vlm_max_new_tokens": key["max_new_tokens"],
                "vlm_batch_questions": int(options.get("batch_questions", DEFAULT_BATCH_QUESTIONS)),
                "vlm_share_prefix": bool(options.get("share_prefix", True))}

    def params(self) -> dict[str, Any]:
        return self.key_of({"weights": self.weights, "size": self.size, "protocol": self.protocol,
                            "max_new_tokens": self.max_new_tokens})

    def identity(self) -> dict[str, Any]:
        """Record columns of this running answerer, including where its weights came from."""
        return {
            **self.describe({"weights": self.weights, "size": self.size, "protocol": self.protocol,
                             "max_new_tokens": self.max_new_tokens, "batch_questions": self.batch_questions,
                             "share_prefix": self.share_prefix}),
            "vlm_weights_source": self.weights_source, "vlm_lm": self.config.model_type,
            "vlm_hidden_size": int(self.config.hidden_size),
        }

    def _config_eos(self) -> list[int]:
        eos = getattr(self.config, "eos_token_id", None)
        return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))

    # --- prompting ----------------------------------------------------------------------
    def render(self, text: str) -> str:
        """The exact text given to the tokenizer for the user text `text`, the image placeholder
        written once."""
        return self.tokenizer.apply_chat_template(
            self.messages(text), chat_template=self.template, tokenize=False, add_generation_prompt=True)

    def token_ids(self, text: str, n_visual: int) -> torch.Tensor:
        """As transformers' processors do: expand the placeholder in the text, then tokenize;
        the chat template's own BOS is not doubled. The image's run of one special token is
        tokenized at lengths 1 and 2 and, when the second is the first with that token once
        more (special tokens are split out before anything else is tokenized), written n
        times: the same ids without tokenizing thousands of placeholders (nor listing them)."""
        bos = self.tokenizer.bos_token
        add_special = not (bos is not None and text.startswith(bos))

        def ids(n: int) -> list[int]:
            return list(self.tokenizer(self.expand(text, n), add_special_tokens=add_special)["input_ids"])

        if n_visual > 2:
            one, two = ids(1), ids(2)
            where = self.image_positions(torch.tensor(one)).nonzero()
            if len(where) == 1:
                i = int(where[0])
                if two == one[:i + 1] + one[i:]:
                    return torch.cat([torch.tensor(one[:i], dtype=torch.long),
                                      torch.full((n_visual,), one[i], dtype=torch.long),
                                      torch.tensor(one[i + 1:], dtype=torch.long)])
        return torch.tensor(ids(n_visual), dtype=torch.long)

    def tokenize(self, user_text: str, n_visual: int) -> Prompt:
        """The rendered prompt, its ids with exactly `n_visual` image positions, and their mask."""
        text = self.render(user_text)
        ids = self.token_ids(text, n_visual)
        mask = self.image_positions(ids)
        if int(mask.sum()) != n_visual:
            raise ValueError(f"{self.name}: the prompt holds {int(mask.sum())} image positions for {n_visual} "
                             f"visual tokens")
        return Prompt(text, ids, mask)

    def embed(self, prompt: Prompt, visual: torch.Tensor) -> torch.Tensor:
        """`[1, L, D]` input embeddings: the token embeddings with the visual tokens at the
        image positions (negative placeholder ids are never looked up)."""
        device = self.runtime.device
        ids = prompt.ids.to(device)
        embeds = self.lm.get_input_embeddings()(ids.clamp_min(0))
        mask = prompt.image_mask.to(device)
        embeds[mask] = visual.to(device, embeds.dtype)
        return embeds[None]

    # --- generation ---------------------------------------------------------------------
    def check_visual(self, visual: torch.Tensor) -> None:
        if visual.shape[-1] != self.config.hidden_size:
            raise ValueError(f"{self.name}: visual tokens are {visual.shape[-1]} wide, the language model takes "
                             f"{self.config.hidden_size}")

    @torch.inference_mode()
    def answer(self, visual: torch.Tensor, user_text: str, *, layout: Layout | None = None,
               keep_logits: bool = False) -> Answer:
        """Answer one question (`user_text`: the benchmark's prompt of it in this family's style)
        about an image whose visual tokens are `visual` `[T, D]` (`layout`: the image's
        views, for families whose positions follow the image grid): the one-at-a-time reference
        path (`answer_many` equals it token for token)."""
        self.check_visual(visual)
        rt = self.runtime
        prompt = self.tokenize(user_text, int(visual.shape[0]))
        positions, offset = self.positions(prompt, layout)
        rt.synchronize()
        t0 = time.perf_counter()
        embeds = self.embed(prompt, visual)
        # an all-ones mask, grown by one per step, as `generate` passes it (same attention path)
        mask = torch.ones((1, embeds.shape[1] + self.max_new_tokens), dtype=torch.long, device=rt.device)
        length = embeds.shape[1]
        extra = {} if positions is None else {"position_ids": positions.to(rt.device)}
        out = self.lm(inputs_embeds=embeds, attention_mask=mask[:, :length], use_cache=True, logits_to_keep=1,
                      **extra)
        logits = out.logits[0, -1]
        token = int(logits.argmax())
        rt.synchronize()
        t1 = time.perf_counter()
        first = logits.float().cpu() if keep_logits else None
        tokens = [token]
        cache = cache_of(out)
        step = torch.empty((1, 1), dtype=torch.long, device=rt.device)
        while len(tokens) < self.max_new_tokens and token not in self.eos_ids:
            step.fill_(token)
            if positions is not None or offset:  # the new token's position: the cache length + the offset
                shape = (1, 1) if positions is None else (positions.shape[0], 1, 1)
                extra["position_ids"] = torch.full(shape, length + offset, device=rt.device)
            length += 1
            out = self.lm(input_ids=step, attention_mask=mask[:, :length], use_cache=True,
                          **{self._cache_arg: cache}, **extra)
            cache = cache_of(out)
            token = int(out.logits[0, -1].argmax())
            tokens.append(token)
        rt.synchronize()
        t2 = time.perf_counter()
        return self.finish(prompt, tokens, int(visual.shape[0]), (t1 - t0) * 1e3, (t2 - t1) * 1e3, first=first)

    def answer_many(self, visual: torch.Tensor, texts: list[str], *,
                    layout: Layout | None = None) -> list[Answer | Exception]:
        """Every question of one image, in order: one result per text, an exception object in
        place of the answer of a question that failed (the others unaffected). With
        `share_prefix` the prompts' common prefix is prefilled once; `batch_questions` decode
        together with left padding; equal to `answer` per question (docs/vlm_speed.md)."""
        self.check_visual(visual)
        if self.batch_questions == 1 and not self.share_prefix:
            out: list[Answer | Exception] = []
            for text in texts:
                try:
                    out.append(self.answer(visual, text, layout=layout))
                except Exception as exc:  # noqa: BLE001 - isolated: the caller writes its error row
                    out.append(exc)
            return out
        return answer_together(self, visual, texts, layout=layout)

    def finish(self, prompt: Prompt, tokens: list[int], visual_tokens: int, prefill_ms: float, decode_ms: float, *,
               first: torch.Tensor | None = None, prefix_tokens_shared: int = 0) -> Answer:
        """The Answer of generated `tokens`: the text and the costs (the benchmark parses the text)."""
        response = self.tokenizer.decode(tokens, skip_special_tokens=True)
        n_prompt = int(prompt.ids.numel())
        return Answer(
            prompt=prompt.text, response=response,
            visual_tokens=visual_tokens, prompt_tokens=n_prompt, new_tokens=len(tokens),
            prefill_ms=prefill_ms, decode_ms=decode_ms,
            kv_cache_mb=self.kv_cache_bytes(n_prompt + len(tokens) - 1) / 2**20,
            token_ids=list(tokens), first_logits=first, prefix_tokens_shared=prefix_tokens_shared,
        )

    def kv_cache_bytes(self, positions: int) -> int:
        """Keys and values of every layer for `positions` cached positions."""
        c = self.config
        heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        width = torch.empty((), dtype=self.runtime.dtype).element_size()
        return 2 * c.num_hidden_layers * heads * head_dim * positions * width
