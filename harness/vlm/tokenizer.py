"""Tokenizers: a checkpoint folder's own, loaded without remote code and without a prompt
(`load_tokenizer`), and a byte-level one with a family's special tokens and chat template, for
language models with random weights (no tokenizer file exists offline) and for the tests'
checkpoints (`byte_level_tokenizer`).

Byte-level ids: the special tokens first (in the order given), then the 256 byte symbols. Any
text encodes (byte-level BPE without merges), special tokens stay atomic, decoding is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PretrainedConfig, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from harness.files import BadFile, read_json_object

TOKENIZER_CONFIG = "tokenizer_config.json"


def load_tokenizer(folder: Path, config: PretrainedConfig | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a checkpoint folder, as transformers' AutoTokenizer picks it, never
    through remote code and never asking on stdin.

    AutoTokenizer reads config.json first (AutoConfig): with transformers 5 a config with
    `auto_map` (InternVL2/2.5, Vintern, Phi-3(.5)-vision) asks whether to run the checkpoint's
    code, and a Phi-3.5 `longrope` config then fails AutoConfig's checks. For such a folder pass
    `config` (the language model's, `LMCheckpoint.text_config`): AutoTokenizer then reads only the
    tokenizer files. `trust_remote_code=False` throughout; a tokenizer class that exists only as
    the checkpoint's code (InternLM2's) falls back to the folder's tokenizer.json, or is named."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), config=config, trust_remote_code=False,
                                             local_files_only=True)
    except (OSError, ValueError) as exc:
        named = read_json_object(folder / TOKENIZER_CONFIG, TOKENIZER_CONFIG).get("tokenizer_class") \
            if (folder / TOKENIZER_CONFIG).is_file() else None
        raise BadFile(f"{folder}: the tokenizer (tokenizer_class {named!r}) cannot be loaded without running "
                      f"the checkpoint's code, which the harness never does ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}); a tokenizer.json beside it would do") from exc


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
