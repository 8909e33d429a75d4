"""Tiny checkpoint folders in the layouts of real VLM checkpoints whose config.json only their
own code reads: the real `auto_map`, Phi-3's rope settings, the tokenizer class their
tokenizer_config.json names, language-model tensors under their real key names (written with
safetensors from transformers' own Phi3 / Qwen2 models)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LAYERS = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=320)
HEAD_DIM = LAYERS["hidden_size"] // LAYERS["num_attention_heads"]
PHI3V_AUTO_MAP = {"AutoConfig": "configuration_phi3_v.Phi3VConfig",
                  "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"}
INTERNVL_AUTO_MAP = {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel",
                     "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel"}


def tokenizer_files(folder: Path, family: str, tokenizer_class: str, auto_map: dict | None) -> None:
    from harness.vlm import VLMS

    VLMS.get(family).random_tokenizer().save_pretrained(folder)
    path = folder / "tokenizer_config.json"
    settings = json.loads(path.read_text())
    settings["tokenizer_class"] = tokenizer_class
    if auto_map:
        settings["auto_map"] = auto_map
    path.write_text(json.dumps(settings))


def phi3_vision_folder(folder: Path, rope_type: str) -> tuple[Path, dict]:
    """Phi-3(.5)-vision's layout: `phi3_v` config at the top level, `model.*` + `lm_head.*`."""
    from safetensors.torch import save_file
    from transformers import Phi3Config, Phi3ForCausalLM

    folder.mkdir(parents=True)
    rope = {"type": rope_type, "long_factor": [1.5] * (HEAD_DIM // 2), "short_factor": [1.0] * (HEAD_DIM // 2)}
    text = {**LAYERS, "num_key_value_heads": 4, "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 6, "pad_token_id": 3}
    torch.manual_seed(0)
    lm = Phi3ForCausalLM(Phi3Config(**text, rope_scaling={**rope, "type": "longrope"}))
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "phi3_v", "architectures": ["Phi3VForCausalLM"], "auto_map": PHI3V_AUTO_MAP, **text,
        "rope_scaling": rope, "embd_layer": {"embedding_cls": "image", "use_hd_transform": True},
        "img_processor": {"model_name": "openai/clip-vit-large-patch14-336", "image_dim_out": 1024}}))
    tokenizer_files(folder, "phi3_vision", "LlamaTokenizer", {"AutoProcessor": "processing_phi3_v.Phi3VProcessor"})
    return folder, {"model_type": "phi3", **text}


def internvl_chat_folder(folder: Path, system_message: str | None = None) -> tuple[Path, dict]:
    """InternVL2.5 / Vintern's original layout: `internvl_chat` config with `llm_config` and
    `template` (and `system_message` when given), `language_model.*` tensors."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder.mkdir(parents=True)
    text = {**LAYERS, "num_key_value_heads": 2, "tie_word_embeddings": False}
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(**text))
    save_file({f"language_model.{k}": v.contiguous() for k, v in lm.state_dict().items()},
              folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "internvl_chat", "architectures": ["InternVLChatModel"], "auto_map": INTERNVL_AUTO_MAP,
        "template": "internvl2_5", "downsample_ratio": 0.5,
        "llm_config": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], **text},
        "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 32},
        **({} if system_message is None else {"system_message": system_message})}))
    tokenizer_files(folder, "internvl", "Qwen2Tokenizer", None)
    return folder, {"model_type": "qwen2", **text}


def tiny_internvl_folder(folder: Path, *, lm: bool = True, tokenizer: bool = True) -> Path:
    """A transformers-written tiny InternVL checkpoint (optionally without its language model or
    tokenizer) with the family's random-weight tokenizer."""
    from safetensors.torch import save_file
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from harness.encoders.internvit import INTERNVIT_TINY

    config = InternVLConfig(vision_config=dict(INTERNVIT_TINY), text_config={
        "model_type": "qwen2", "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320, "tie_word_embeddings": True})
    model = InternVLForConditionalGeneration(config)
    model.save_pretrained(folder)
    if not lm:  # keep the vision tensors only
        from safetensors.torch import load_file

        tensors = load_file(folder / "model.safetensors")
        save_file({k: v for k, v in tensors.items() if not k.startswith("language_model.")},
                  folder / "model.safetensors")
    if tokenizer:
        from harness.vlm import VLMS

        VLMS.get("internvl").random_tokenizer().save_pretrained(folder)
    return folder
