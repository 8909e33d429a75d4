"""A VLM checkpoint's language model: its architecture (the checkpoint's config.json), its
tensors (safetensors only, through a strict key map, the vision tensors never read), its
tokenizer and its chat template (from the folder). No pickle, no `trust_remote_code`.

Everything here can be checked before a tensor is read (`LMCheckpoint.check`): a folder
without config.json, language-model tensors or tokenizer fails with a message naming what is
missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from harness.encoders.weights import Checkpoint, KeyMap, WeightsError, resolve

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# Config keys that describe a file (or the vision tower) rather than the language model.
_META_KEYS = ("architectures", "auto_map", "_name_or_path", "transformers_version", "model_type", "torch_dtype",
              "dtype", "vision_config")
# model_type of a whole-VLM config -> the causal LM it is built on (Phi-3-vision's top level is Phi-3;
# the hub's Qwen2.5-VL config.json holds its text model's keys at the top level too).
TEXT_MODEL_TYPES = {"phi3_v": "phi3", "qwen2_5_vl": "qwen2_5_vl_text"}


def text_config_dict(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a VLM config.json: `text_config` (transformers' LLaVA-NeXT,
    InternVL), `llm_config` (original InternVL / Vintern), or the top level (Phi-3-vision)."""
    sub = config.get("text_config") or config.get("llm_config") or config
    sub = dict(sub)
    if "tie_word_embeddings" in config:  # transformers 5 keeps it at the top level (Qwen2.5-VL)
        sub.setdefault("tie_word_embeddings", config["tie_word_embeddings"])
    model_type = sub.get("model_type")
    if model_type is None:
        raise WeightsError("config.json names no language-model model_type (text_config / llm_config)")
    sub["model_type"] = TEXT_MODEL_TYPES.get(model_type, model_type)
    scaling = sub.get("rope_scaling")
    if isinstance(scaling, dict) and scaling.get("type") == "su":  # Phi-3's first name for longrope
        sub["rope_scaling"] = {**scaling, "type": "longrope"}
    return sub


def build_text_config(sub: dict[str, Any], attn: str = "sdpa") -> PretrainedConfig:
    model_type = sub["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise WeightsError(f"language model type {model_type!r} is not known to transformers")
    params = {k: v for k, v in sub.items() if k not in _META_KEYS and not k.startswith("_")}
    config = CONFIG_MAPPING[model_type](**params)
    config._attn_implementation = attn
    return config


def expected_keys(config: PretrainedConfig) -> tuple[list[str], bool]:
    """The causal LM's state-dict keys (built on the meta device: no memory) and whether its
    output head is tied to the input embedding (then `lm_head.weight` need not be stored)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    keys = [k for k in model.state_dict() if not (tied and k == "lm_head.weight")]
    return keys, tied


class LMCheckpoint:
    """The language-model side of a checkpoint folder, read through `keymap`."""

    def __init__(self, source: str, keymap: KeyMap) -> None:
        self.source = source
        self.keymap = keymap
        self.folder = resolve(source, [keymap])
        _fetch_side_files(source, self.folder)

    # --- what can be checked before loading -------------------------------------------
    def config_json(self) -> dict[str, Any]:
        path = self.folder / "config.json"
        if not path.is_file():
            raise WeightsError(f"{self.folder}: no config.json (the language model's architecture comes from it)")
        return json.loads(path.read_text())

    def text_config(self, attn: str = "sdpa") -> PretrainedConfig:
        return build_text_config(text_config_dict(self.config_json()), attn)

    def check(self, attn: str = "sdpa") -> PretrainedConfig:
        """Config, tensors and tokenizer are all there and fit; returns the LM config."""
        config = self.text_config(attn)
        if not any((self.folder / f).is_file() for f in TOKENIZER_FILES):
            raise WeightsError(f"{self.folder}: no tokenizer ({' / '.join(TOKENIZER_FILES)}); the language model's "
                               f"tokenizer and chat template come from the checkpoint folder")
        self.plan(config)
        return config

    def plan(self, config: PretrainedConfig) -> dict[str, str]:
        """Checkpoint key -> LM key for every LM tensor; strict both ways."""
        ckpt = Checkpoint(self.folder)
        selected = [k for k in ckpt.file_of if self.keymap.selects(k)]
        if not selected:
            raise WeightsError(f"{self.folder}: no language-model tensors ({self.keymap.name}: keys under "
                               f"{', '.join(p for p, _ in self.keymap.prefixes)})")
        plan = {k: self.keymap.targets(k)[0][0] for k in selected}
        keys, tied = expected_keys(config)
        expected = set(keys) | ({"lm_head.weight"} if tied else set())
        unexpected = sorted(k for k, t in plan.items() if t not in expected)
        if unexpected:
            raise WeightsError(f"{self.folder}: unexpected language-model key(s) for {self.keymap.name}: "
                               f"{', '.join(unexpected[:10])}")
        missing = sorted(set(keys) - set(plan.values()))
        if missing:
            raise WeightsError(f"{self.folder}: missing language-model key(s) for {self.keymap.name}: "
                               f"{', '.join(missing[:10])}")
        self._ckpt = ckpt
        return plan

    # --- loading ------------------------------------------------------------------------
    def load_into(self, model: torch.nn.Module, config: PretrainedConfig) -> None:
        """Copy the LM tensors into `model` one at a time (memory-mapped), shapes checked."""
        plan = self.plan(config)
        params = model.state_dict()
        with torch.no_grad():
            for file, keys in self._ckpt.read(list(plan)).items():
                with safe_open(str(self.folder / file), framework="pt") as handle:
                    for key in keys:
                        tensor = handle.get_tensor(key)
                        target = params[plan[key]]
                        if target.shape != tensor.shape:
                            raise WeightsError(f"{self.folder}: {key} has shape {tuple(tensor.shape)}, "
                                               f"{plan[key]} needs {tuple(target.shape)}")
                        target.copy_(tensor)
        if getattr(config, "tie_word_embeddings", False):
            model.tie_weights()

    def tokenizer(self) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder))

    def chat_template(self, tokenizer: PreTrainedTokenizerBase) -> str | None:
        """The processor's template (`chat_template.jinja`, `chat_template.json`) if the folder
        has one, else the tokenizer's."""
        jinja = self.folder / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text()
        js = self.folder / "chat_template.json"
        if js.is_file():
            return json.loads(js.read_text())["chat_template"]
        return tokenizer.chat_template

    def generation_eos(self) -> list[int]:
        """EOS ids of generation_config.json, if any (a list or one id)."""
        path = self.folder / "generation_config.json"
        if not path.is_file():
            return []
        eos = json.loads(path.read_text()).get("eos_token_id")
        return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
              "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
              "chat_template.json")


def _fetch_side_files(source: str, folder: Path) -> None:
    """A hub id: the config, tokenizer and template files beside the shards (cache first;
    a file the repo lacks is skipped, and `check` names what is still missing)."""
    if Path(source).expanduser().is_dir():
        return
    from huggingface_hub import hf_hub_download

    for name in SIDE_FILES:
        if (folder / name).exists():
            continue
        try:
            hf_hub_download(source, name)
        except Exception:  # noqa: BLE001 - absent files are named by `check`
            continue
