"""Qwen2.5-VL and LLaVA-OneVision answer as transformers' own VLMs do, token for token.

As tests/test_vlm_equivalence.py: a tiny random checkpoint written by transformers'
`save_pretrained` (real key names) with a tokenizer carrying the family's special tokens and chat
template; the harness reads it (encoder: vision tensors; answerer: LM tensors, tokenizer,
template), encodes each image once with the family's native strategy and answers both questions;
the family's processor + greedy `generate` is the reference: same prompt ids, first-step logits
within 1e-4, same new tokens. For Qwen2.5-VL this checks the 3-D rotary positions of the image
grid (native views of several aspect ratios) and the decode offset after them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from harness.encoders import ENCODERS
from harness.encoders.qwen_vit import QWEN2_5_VIT_TINY
from harness.encoders.siglip import SIGLIP_TINY
from harness.preprocess import build_strategy
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from harness.types import Layout
from harness.vlm import VLMS
from harness.vlm import llava_onevision as onevision_family
from harness.vlm import qwen2_5_vl as qwen_family
from tests.helpers.vlm import CPU, QUESTIONS, TEXT, check_family, image, messages

ROOT = Path(__file__).resolve().parents[1]
QWEN_TEXT = {**TEXT, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 2, 2]}}


def without_video_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The processors' class check looks up the video processor, which needs torchvision (not
    installed here); their own text and image handling is what the tests use, unchanged."""
    from transformers import ProcessorMixin

    monkeypatch.setattr(ProcessorMixin, "check_argument_for_proper_class", lambda self, name, arg: None)


def randomise(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for p in model.parameters():  # norms and biases too: a misplaced tensor cannot pass by luck
        p.data.normal_(0, 0.2)


@pytest.mark.slow
def test_qwen2_5_vl_answers_equal_transformers_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = qwen_family.Qwen2_5_VLAnswerer.random_tokenizer()
    ids = tok.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config={**QWEN2_5_VIT_TINY, "out_hidden_size": 48},
        text_config={**QWEN_TEXT, "eos_token_id": tok.eos_token_id, "bos_token_id": None},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    randomise(model)
    without_video_processor(monkeypatch)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessorPil(), tokenizer=tok,
                                    chat_template=qwen_family.CHAT_TEMPLATE)
    folder = tmp_path / "qwen2.5-vl-tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(processor.chat_template)
    encoder = ENCODERS.get("qwen2_5_vl_vit")(size="tiny", weights=str(folder), runtime=CPU, out_dim=48)
    strategy = build_strategy("qwen_native", mean=list(OPENAI_CLIP_MEAN), std=list(OPENAI_CLIP_STD))
    # wide, tall and square native views: rows != columns, so a swapped axis would show
    sizes = [(300, 130), (90, 260), (120, 120)]
    check_family(model, processor, folder, encoder, strategy, "qwen2_5_vl", sizes)
    # the positions themselves, prefill and decode offset, against transformers' get_rope_index
    answerer = VLMS.get("qwen2_5_vl")(weights=str(folder), runtime=CPU)
    for k, (w, h) in enumerate(sizes):
        img = image(w, h, k)
        text = processor.apply_chat_template(messages(QUESTIONS[0]), add_generation_prompt=True)
        inputs = processor(images=img, text=text, return_tensors="pt")
        want, delta = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                                 image_grid_thw=inputs["image_grid_thw"])
        layout = strategy.plan(w, h)
        prompt = answerer.tokenize(QUESTIONS[0], encoder.num_tokens(layout))
        got, offset = answerer.positions(prompt, layout)
        assert torch.equal(got, want) and offset == int(delta) != 0


@pytest.mark.slow
def test_llava_onevision_answers_equal_transformers_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tok = onevision_family.LlavaOnevisionAnswerer.random_tokenizer()
    tower = {**SIGLIP_TINY, "num_hidden_layers": SIGLIP_TINY["num_hidden_layers"] - 1, "vision_use_head": False}
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", **tower},
        text_config={"model_type": "qwen2", **TEXT, "tie_word_embeddings": True, "eos_token_id": tok.eos_token_id},
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full", tie_word_embeddings=True,
    )
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    randomise(model)
    encoder = ENCODERS.get("siglip_so400m")  # built below from the folder
    strategy = build_strategy("llava_onevision", mean=list(encoder.mean), std=list(encoder.std))
    without_video_processor(monkeypatch)
    # the hub's preprocessor_config: 384 px, the 36 pinpoints 384..2304 (h, w), SigLIP's mean/std 0.5
    pinpoints = [[h, w] for h in range(384, 2305, 384) for w in range(384, 2305, 384)]
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 384, "width": 384}, image_grid_pinpoints=pinpoints, image_mean=list(encoder.mean),
        image_std=list(encoder.std), resample=3)
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=729,
        vision_feature_select_strategy="full", chat_template=onevision_family.CHAT_TEMPLATE)
    folder = tmp_path / "llava-onevision-tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(processor.chat_template)
    encoder = encoder(size="tiny", weights=str(folder), runtime=CPU, connector="llava_onevision", out_dim=48,
                      batch_views=8)
    # 1x2 tiles unpadded; 3x2 tiles (past anyres_max_9's 9 tiles' worth: the grid is shrunk)
    check_family(model, processor, folder, encoder, strategy, "llava_onevision", [(700, 380), (1100, 1500)])


def layout(view_wh: tuple[int, int], n_views: int = 1) -> Layout:
    w, h = view_wh
    return Layout(strategy="test", original_size=view_wh, tile_size=28, grid=(1, n_views), resized_size=view_wh,
                  canvas_size=view_wh, content_box=(0, 0, w, h), has_global=False, global_position=None,
                  n_views=n_views, executed_views=n_views, view_size=view_wh)


def test_mrope_positions_by_hand() -> None:
    """Two text tokens, a 2x3 merged grid (56x84 px view), one text token: worked by hand from
    `get_rope_index` (the image starts at 2: t = 2, rows 2..3, columns 2..4; the text after it
    continues at 2 + max(2, 3) = 5; decode offset = largest + 1 - length = 6 - 9)."""
    mask = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 0], dtype=torch.bool)
    pos, offset = qwen_family.mrope_positions(mask, qwen_family.merged_grids(layout((84, 56))))
    assert pos.tolist() == [[0, 1, 2, 2, 2, 2, 2, 2, 5],
                            [0, 1, 2, 2, 2, 3, 3, 3, 5],
                            [0, 1, 2, 3, 4, 2, 3, 4, 5]]
    assert offset == -3


def test_mrope_positions_of_tiles_and_refusals() -> None:
    """Tiles are consecutive images: each 1x1 tile (28 px) starts after the previous one's
    largest position; a token count that is not the merged grid's (a reduction) is refused."""
    mask = torch.tensor([0, 1, 1, 1, 0], dtype=torch.bool)
    pos, offset = qwen_family.mrope_positions(mask, qwen_family.merged_grids(layout((28, 28), n_views=3)))
    assert pos.tolist() == [[0, 1, 2, 3, 4]] * 3 and offset == 0
    with pytest.raises(ValueError, match="merged grid of 6 tokens"):
        qwen_family.mrope_positions(mask, qwen_family.merged_grids(layout((84, 56))))


@pytest.mark.parametrize("family", VLMS.names())
def test_every_family_is_declared_and_prepares_a_job(family: str) -> None:
    """Each registered family: its config file, its declared tokens in its random tokenizer, its
    chat template writing the placeholder once, and a job with its own encoder x strategy that
    passes the checks before loading (connector, widths)."""
    import yaml

    from harness.config import compose
    from harness.pipeline.job import prepare_job

    cls = VLMS.get(family)
    assert yaml.safe_load((ROOT / "configs" / "vlm" / f"{family}.yaml").read_text())["name"] == family
    tok = cls.random_tokenizer()
    assert all(t in tok.get_vocab() for t in cls.tokens.must_hold())
    answerer = cls(runtime=CPU)
    assert answerer.render("Is it red?").count(cls.tokens.written) == 1
    encoder = ENCODERS.get(cls.encoder)
    connector = [] if encoder.native_connector == cls.connector else [f"encoder.connector={cls.connector}"]
    job = prepare_job(compose([f"encoder={cls.encoder}", *connector, f"preprocess={cls.strategy}", f"vlm={family}",
                               "encoder.size=tiny", "encoder.weights=random", "dataset=synthetic"]))
    assert job.answerer_cls is cls


NEW_FAMILY = '''"""LLaVA-NeXT with Vicuna (llava-hf/llava-v1.6-vicuna-7b-hf): its own chat template and Llama."""
from harness.encoders.weights import KeyMap
from harness.vlm import VLMS
from harness.vlm.base import CONDITIONAL_GENERATION_LM, TINY_LM, Answerer, FamilyTokens

TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ 'USER: ' }}"
            "{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ '<image>\\\\n' }}"
            "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{{ ' ' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
LLAMA = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
             num_attention_heads=32, vocab_size=32064, bos_token_id=1, eos_token_id=2)


@VLMS.register("llava_vicuna")
class LlavaVicuna(Answerer):
    connector = "llava_next"
    encoder, strategy = "clip_vit_l14_336", "llava_anyres"
    keymap = KeyMap("llava_vicuna_lm", prefixes=CONDITIONAL_GENERATION_LM)
    presets = {"full": LLAMA, "tiny": {**LLAMA, **TINY_LM, "num_key_value_heads": 4, "eos_token_id": 2}}
    hf_id = "llava-hf/llava-v1.6-vicuna-7b-hf"
    tokens = FamilyTokens(image="<image>", special=("<unk>", "<s>", "</s>", "<image>"), bos="<s>", eos="</s>",
                          unk="<unk>", add_bos=True, chat_template=TEMPLATE)
'''
NEW_FAMILY_CONFIG = """name: llava_vicuna
weights: ${encoder.weights}
size: ${encoder.size}
protocol: official
max_new_tokens: null
"""


@pytest.mark.slow
def test_a_new_vlm_family_is_one_module_and_one_config(tmp_path: Path) -> None:
    """Copy the package and configs, add exactly the family's module and config, and answer
    questions with it through `python -m harness` (random tiny weights)."""
    import os
    import shutil
    import subprocess
    import sys

    import pandas as pd

    root = tmp_path / "checkout"
    for folder in ("harness", "configs"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "harness" / "vlm" / "llava_vicuna.py").write_text(NEW_FAMILY)
    (root / "configs" / "vlm" / "llava_vicuna.yaml").write_text(NEW_FAMILY_CONFIG)
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run(
        [sys.executable, "-m", "harness", "encoder=clip_vit_l14_336", "encoder.connector=llava_next",
         "preprocess=llava_anyres", "encoder.size=tiny", "encoder.weights=random", "vlm=llava_vicuna",
         "vlm.max_new_tokens=2", "dataset=synthetic", "dataset.num_images=1", "progress=false",
         f"results_dir={tmp_path / 'out'}"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    (records,) = (tmp_path / "out" / "runs" / "default").glob("*/records.parquet")
    rows = pd.read_parquet(records)
    q = rows[rows["kind"] == "question"]
    assert len(q) >= 1 and (q["status"] == "ok").all() and (q["vlm"] == "llava_vicuna").all()
    assert q["prompt"].str.startswith("USER: <image>\n").all() and q["prompt"].str.endswith(" ASSISTANT:").all()
    assert (q["prompt_tokens"] > q["visual_tokens"]).all() and set(rows["vlm_lm"].dropna()) == {"llama"}


def test_qwen2_5_vl_reads_the_hub_layout(tmp_path: Path) -> None:
    """The hub's config.json (model_type qwen2_5_vl, the text keys at the top level, `rope_scaling`
    of type mrope) and transformers 5's (`text_config`, `tie_word_embeddings` on top) build the
    same language model from the same `model.*` / `lm_head.*` tensors (`visual.*` never read),
    and both answer alike."""
    import json

    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = qwen_family.Qwen2_5_VLAnswerer.random_tokenizer()
    config = Qwen2_5_VLConfig(vision_config={**QWEN2_5_VIT_TINY, "out_hidden_size": 48},
                              text_config={**QWEN_TEXT, "eos_token_id": tok.eos_token_id})
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    randomise(model)
    v5, hub = tmp_path / "v5", tmp_path / "hub"
    model.save_pretrained(v5)
    tok.save_pretrained(v5)
    shutil.copytree(v5, hub)
    saved = json.loads((v5 / "config.json").read_text())
    text = {k: v for k, v in saved["text_config"].items() if k not in ("model_type", "rope_parameters", "layer_types")}
    rope = saved["text_config"]["rope_parameters"]
    (hub / "config.json").write_text(json.dumps({
        **text, "model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "tie_word_embeddings": False, "rope_theta": rope["rope_theta"], "vision_config": saved["vision_config"],
        "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]}, "image_token_id": 5}))
    want = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    want["lm_head.weight"] = model.lm_head.weight
    visual = torch.randn(12, 48, generator=torch.Generator().manual_seed(0))
    view = layout((112, 84))  # 3 x 4 merged tokens
    answers = []
    for folder in (v5, hub):
        answerer = VLMS.get("qwen2_5_vl")(weights=str(folder), max_new_tokens=4, runtime=CPU)
        got = answerer.lm.state_dict()
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
        assert answerer.config.rope_parameters["mrope_section"] == [2, 2, 2]
        answers.append(answerer.answer(visual, QUESTIONS[0], layout=view, keep_logits=True))
    assert answers[0].token_ids == answers[1].token_ids
    torch.testing.assert_close(answers[0].first_logits, answers[1].first_logits, atol=0, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("family", VLMS.names())
def test_every_family_answers_through_a_run(tmp_path: Path, family: str) -> None:
    """Each registered family with its own encoder x strategy (tiny, random weights): a run of
    one synthetic image answers its questions (the layout reaches the answerer)."""
    import pandas as pd

    from harness.config import compose
    from harness.pipeline.execute import execute
    from harness.pipeline.job import prepare_job

    cls = VLMS.get(family)
    encoder = ENCODERS.get(cls.encoder)
    connector = [] if encoder.native_connector == cls.connector else [f"encoder.connector={cls.connector}"]
    outcome = execute(prepare_job(compose([
        f"encoder={cls.encoder}", *connector, f"preprocess={cls.strategy}", f"vlm={family}", "encoder.size=tiny",
        "encoder.weights=random", "vlm.max_new_tokens=2", "dataset=synthetic", "dataset.num_images=1",
        f"results_dir={tmp_path}", "progress=false"])))
    assert outcome.status == "ok", outcome.message
    rec = pd.read_parquet(outcome.run_dir / "records.parquet")
    q = rec[rec["kind"] == "question"]
    image_tokens = rec.loc[rec["kind"] == "image", "visual_tokens"].iloc[0]
    assert len(q) >= 1 and (q["status"] == "ok").all() and (q["vlm"] == family).all()
    assert (q["visual_tokens"] == image_tokens).all() and (q["new_tokens"] <= 2).all()
