"""InternVL's `chat()` rules the harness follows on original-layout checkpoints (issue 22 item 8):
the system message is the config's `system_message` when config.json has one, else the named
template's (`InternVLChatModel.__init__`, transcribed below), and the answer is stripped before
InternVL's MME post-processing (`"   No"` scores no). References: OpenGVLab/InternVL
`internvl_chat/internvl/model/internvl_chat/modeling_internvl_chat.py` and the chat query of
tests/references/internvl_chat_reference.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.benchmarks.mme.prompts import PARSERS, PROMPTS
from harness.runtime import Runtime
from harness.vlm import VLMS
from harness.vlm.internvl import CONVERSATIONS
from tests.helpers.checkpoints import internvl_chat_folder
from tests.references.internvl_chat_reference import chat_query

CPU = Runtime.resolve("cpu", "float32")
QUESTION = "Is there a red square in this image? Please answer yes or no."
ASKED = QUESTION + " Answer the question using a single word or phrase."  # InternVL's eval script


def model_system_message(config: dict, template_system_message: str) -> str:
    """`InternVLChatModel.__init__`: `config.system_message if hasattr(config, 'system_message')
    else self.conv_template.system_message` (PretrainedConfig keeps every key of config.json)."""
    return config["system_message"] if "system_message" in config else template_system_message


@pytest.mark.parametrize("system", [None, "Bạn là một trợ lý AI hữu ích."], ids=["template", "config"])
def test_system_message_follows_the_model_code(tmp_path: Path, system: str | None) -> None:
    import json

    folder, _ = internvl_chat_folder(tmp_path / "internvl2_5", system_message=system)
    config = json.loads((folder / "config.json").read_text())
    template = CONVERSATIONS["internvl2_5"]
    expected = model_system_message(config, template.system_message)
    answerer = VLMS.get("internvl")(weights=str(folder), protocol="internvl", max_new_tokens=2, runtime=CPU)
    assert answerer.conversation is not None and answerer.conversation.system_message == expected
    tok = answerer.tokenizer
    for patches in (1, 2):
        ids = tok(chat_query(expected, template.sep, ASKED, 256, patches))["input_ids"]
        user_text = PROMPTS["internvl"]({"question": QUESTION})  # what MME's benchmark hands the answerer
        assert answerer.tokenize(user_text, 256 * patches).ids.tolist() == ids
    assert (system is None) == (expected == template.system_message)


def test_a_non_text_system_message_is_named(tmp_path: Path) -> None:
    import json

    folder, _ = internvl_chat_folder(tmp_path / "internvl2_5")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "system_message": ["not", "text"]}))
    with pytest.raises(ValueError, match=r"config.json: system_message is \['not', 'text'\]; expected text"):
        VLMS.get("internvl")(weights=str(folder), protocol="internvl", max_new_tokens=2, runtime=CPU)


def chat_then_post_process(decoded: str, sep: str) -> str:
    """What InternVL's MME script scores: `chat()`'s `response.split(template.sep.strip())[0].strip()`,
    then its `post_processing` and the official parser (the harness's own functions for those
    two, tested against the scripts in tests/test_vlm_protocols.py)."""
    from harness.benchmarks.mme.prompts import internvl_post_processing
    from harness.mme.scoring import parse_answer

    return parse_answer(internvl_post_processing(decoded.split(sep.strip())[0].strip()))


@pytest.mark.parametrize("decoded", ["   No", "  Yes \n", "\n\n  no", " yes", "No.", "   是", "maybe"])
def test_internvl_parser_strips_as_chat_does(decoded: str) -> None:
    sep = CONVERSATIONS["internvl2_5"].sep
    assert PARSERS["internvl"](decoded) == chat_then_post_process(decoded, sep)


def test_a_leading_space_answer_scores_through_a_run_of_the_answerer(tmp_path: Path, monkeypatch) -> None:
    """End to end through `Answerer.answer`: a model whose greedy answer decodes to `"   No"`
    (forced through the decoder) is recorded raw and parsed `no` under the internvl protocol (the
    benchmark parses responses: harness/benchmarks/mme/prompts.py)."""
    folder, _ = internvl_chat_folder(tmp_path / "internvl2_5")
    answerer = VLMS.get("internvl")(weights=str(folder), protocol="internvl", max_new_tokens=2, runtime=CPU)
    monkeypatch.setattr(answerer.tokenizer, "decode", lambda ids, **kw: "   No")
    ans = answerer.answer(torch.zeros(256, 48), QUESTION)
    assert ans.response == "   No" and PARSERS["internvl"](ans.response) == "no"  # MME's parser of the protocol
