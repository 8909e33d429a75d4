"""A byte-level tokenizer with a family's special tokens and chat template, for language
models with random weights (no tokenizer file exists offline) and for the tests' checkpoints.

Ids: the special tokens first (in the order given), then the 256 byte symbols. Any text
encodes (byte-level BPE without merges), special tokens stay atomic, decoding is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast


def byte_level_tokenizer(
    special: Sequence[str], *, bos: str | None, eos: str, unk: str | None = None, pad: str | None = None,
    add_bos: bool = False, chat_template: str | None = None, extra: dict[str, str] | None = None,
) -> PreTrainedTokenizerFast:
    """`special`: every special token (bos/eos/unk/pad and the image tokens) in id order.
    `add_bos`: prepend `bos` when encoding with special tokens (Llama/Mistral tokenizers do).
    `extra`: named special tokens exposed as tokenizer attributes (transformers'
    `extra_special_tokens`, e.g. InternVL's `context_image_token`)."""
    symbols = list(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(special)}
    for sym in sorted(symbols):
        vocab[sym] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(special))
    if add_bos and bos is not None:
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad,
        extra_special_tokens=dict(extra or {}),
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok
