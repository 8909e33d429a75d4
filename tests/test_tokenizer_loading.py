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

from tests.helpers.checkpoints import LAYERS, internvl_chat_folder, phi3_vision_folder, tokenizer_files
from tests.helpers.cli import ROOT

PROMPT = "Do you wish to run the custom code"
SAMPLE = "Is there a red square? Please answer yes or no."


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
    tokenizer_files(folder, "internvl", "InternLM2Tokenizer",
                     {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]})
    config = Qwen2Config(**LAYERS)
    tok = load_tokenizer(folder, config)
    assert type(tok).__name__ == "TokenizersBackend" and tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 5
    for name in ("tokenizer.json",):
        (folder / name).unlink()
    with pytest.raises(BadFile, match=rf"{folder}: the tokenizer \(tokenizer_class 'InternLM2Tokenizer'\) cannot"):
        load_tokenizer(folder, config)
