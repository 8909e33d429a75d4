"""Loading real checkpoints never stops at a prompt (issue 22 item 7).

Tiny checkpoint folders whose config.json carries the real `auto_map` (InternVL2.5 / Vintern:
`InternVLChatConfig` / `InternVLChatModel`; Phi-3(.5)-vision: `Phi3VConfig` / `Phi3VForCausalLM`)
and Phi-3's rope settings (`longrope` with long/short factors and
`original_max_position_embeddings`, and Phi-3-vision-128k's older name `su`), with the tokenizer
class their tokenizer_config.json names (`Qwen2Tokenizer`, `LlamaTokenizer`). The answerer is
built in a fresh process whose stdin stays open and unwritten, under a timeout: a remote-code
prompt would block and fail the test instead of hanging it. The tokenizer it loads is the one
transformers' AutoTokenizer picks for the same tokenizer files when config.json does not get in
the way (a plain config without auto_map): same class, same ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli import ROOT

LAYERS = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=320)
HEAD_DIM = LAYERS["hidden_size"] // LAYERS["num_attention_heads"]
PHI3V_AUTO_MAP = {"AutoConfig": "configuration_phi3_v.Phi3VConfig",
                  "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"}
INTERNVL_AUTO_MAP = {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel",
                     "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel"}
PROMPT = "Do you wish to run the custom code"
SAMPLE = "Is there a red square? Please answer yes or no."


def _tokenizer_files(folder: Path, family: str, tokenizer_class: str, auto_map: dict | None) -> None:
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
    _tokenizer_files(folder, "phi3_vision", "LlamaTokenizer", {"AutoProcessor": "processing_phi3_v.Phi3VProcessor"})
    return folder, {"model_type": "phi3", **text}


def internvl_chat_folder(folder: Path) -> tuple[Path, dict]:
    """InternVL2.5 / Vintern's original layout: `internvl_chat` config with `llm_config` and
    `template`, `language_model.*` tensors."""
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
        "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 32}}))
    _tokenizer_files(folder, "internvl", "Qwen2Tokenizer", None)
    return folder, {"model_type": "qwen2", **text}


LOAD = """
import json, sys
from harness.runtime import Runtime
from harness.vlm import VLMS
answerer = VLMS.get(sys.argv[1])(weights=sys.argv[2], max_new_tokens=2, runtime=Runtime.resolve("cpu", "float32"))
tok = answerer.tokenizer
print(json.dumps({"class": type(tok).__name__, "ids": tok(sys.argv[3])["input_ids"], "lm": answerer.config.model_type,
                  "rope": getattr(answerer.config, "rope_parameters", None)}))
"""


def load_without_a_terminal(family: str, folder: Path, tmp_path: Path) -> dict:
    """Build the answerer in a fresh process with stdin open but never written (what a prompt
    would wait on) and a timeout; its one JSON line."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-c", LOAD, family, str(folder), SAMPLE], stdin=subprocess.PIPE,
                                stdout=o, stderr=e, env=env, cwd=tmp_path)
        try:
            rc = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"loading {folder} waited on stdin (a remote-code prompt?): {err.read_text()[-500:]}")
        finally:
            proc.stdin.close()
    text = out.read_text() + err.read_text()
    assert rc == 0, text[-2000:]
    assert PROMPT not in text
    return json.loads(out.read_text().strip().splitlines()[-1])


def auto_tokenizer_reference(folder: Path, plain_config: dict, tmp_path: Path):
    """transformers' AutoTokenizer on the same tokenizer files beside a config.json without
    auto_map (nothing remote to ask about)."""
    from transformers import AutoTokenizer

    ref = tmp_path / "reference"
    ref.mkdir()
    for f in folder.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, ref / f.name)
    (ref / "config.json").write_text(json.dumps(plain_config))
    return AutoTokenizer.from_pretrained(str(ref))


@pytest.mark.parametrize("rope_type", ["longrope", "su"], ids=["phi3.5_longrope", "phi3_su"])
def test_phi3_vision_checkpoint_loads_without_a_prompt(tmp_path: Path, rope_type: str) -> None:
    folder, plain = phi3_vision_folder(tmp_path / "phi3v", rope_type)
    got = load_without_a_terminal("phi3_vision", folder, tmp_path)
    ref = auto_tokenizer_reference(folder, plain, tmp_path)
    assert got["class"] == type(ref).__name__
    assert got["ids"] == ref(SAMPLE)["input_ids"]
    assert got["lm"] == "phi3" and got["rope"]["rope_type"] == "longrope"
    assert got["rope"]["original_max_position_embeddings"] == 4096


def test_internvl_chat_checkpoint_loads_without_a_prompt(tmp_path: Path) -> None:
    folder, plain = internvl_chat_folder(tmp_path / "internvl2_5")
    got = load_without_a_terminal("internvl", folder, tmp_path)
    ref = auto_tokenizer_reference(folder, plain, tmp_path)
    assert got["class"] == type(ref).__name__ == "Qwen2Tokenizer"  # the class tokenizer_config.json names
    assert got["ids"] == ref(SAMPLE)["input_ids"]
    assert got["lm"] == "qwen2"


def test_a_tokenizer_that_only_remote_code_defines_is_never_run(tmp_path: Path) -> None:
    """InternLM2's tokenizer (InternVL2-2B/26B) exists only as the checkpoint's code
    (tokenizer_config.json's auto_map): the folder's tokenizer.json is read instead; without one
    the folder is named. No prompt either way (this process's stdin is pytest's)."""
    from transformers import Qwen2Config

    from harness.files import BadFile
    from harness.vlm.tokenizer import load_tokenizer

    folder = tmp_path / "internlm2"
    folder.mkdir()
    _tokenizer_files(folder, "internvl", "InternLM2Tokenizer",
                     {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]})
    config = Qwen2Config(**LAYERS)
    tok = load_tokenizer(folder, config)
    assert type(tok).__name__ == "TokenizersBackend" and tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 5
    for name in ("tokenizer.json",):
        (folder / name).unlink()
    with pytest.raises(BadFile, match=rf"{folder}: the tokenizer \(tokenizer_class 'InternLM2Tokenizer'\) cannot"):
        load_tokenizer(folder, config)
