"""The harness's answer equals transformers' own VLM, token for token.

Tiny random LLaVA-NeXT and InternVL checkpoints are written by transformers' `save_pretrained`
with a tokenizer carrying the family's special tokens and chat template and the processor's
template beside it. The harness reads them (encoder: vision tensors; answerer: LM tensors,
tokenizer, template), runs the native strategy, encodes each image once and answers both of its
questions; transformers' processor + greedy `generate` is the reference. First-step logits
agree within 1e-4, the new tokens are identical, and so are the prompt ids.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.benchmarks import get_benchmark
from harness.encoders import ENCODERS
from harness.encoders.clip_vit import CLIP_TINY
from harness.encoders.internvit import INTERNVIT_TINY
from harness.preprocess import build_strategy
from harness.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from harness.types import Question
from harness.vlm import VLMS
from harness.vlm import internvl as internvl_family
from harness.vlm import llava_next as llava_family
from tests.helpers.vlm import CPU, NEW_TOKENS, QUESTIONS, TEXT, check_family


@pytest.mark.slow
def test_llava_next_answers_equal_transformers_generate(tmp_path: Path) -> None:
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tok = llava_family.LlavaNextAnswerer.random_tokenizer()
    torch.manual_seed(0)
    config = LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", **CLIP_TINY},
        text_config={"model_type": "mistral", **TEXT, "head_dim": 12, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id},
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = LlavaNextForConditionalGeneration(config).eval()
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
            image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD), resample=3),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=llava_family.CHAT_TEMPLATE,
    )
    folder = tmp_path / "llava-next-tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    encoder = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU, connector="llava_next",
                                               out_dim=48, batch_views=8)
    strategy = build_strategy("llava_anyres", tile_size=336, mean=list(OPENAI_CLIP_MEAN), std=list(OPENAI_CLIP_STD))
    check_family(model, processor, folder, encoder, strategy, "llava_next", [(500, 300), (240, 500)])


@pytest.mark.slow
def test_internvl_answers_equal_transformers_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor, ProcessorMixin
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    tok = internvl_family.InternVLAnswerer.random_tokenizer()
    torch.manual_seed(0)
    config = InternVLConfig(
        vision_config=dict(INTERNVIT_TINY),
        text_config={"model_type": "qwen2", **TEXT, "tie_word_embeddings": True, "eos_token_id": tok.eos_token_id},
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5, vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = InternVLForConditionalGeneration(config).eval()
    # The class check looks up the video processor, which needs torchvision (not installed here);
    # the processor's own text and image handling is what this test uses, unchanged.
    monkeypatch.setattr(ProcessorMixin, "check_argument_for_proper_class", lambda self, name, arg: None)
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessorPil(
            size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=1, max_patches=12,
            image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), resample=3),
        tokenizer=tok, image_seq_length=256, chat_template=internvl_family.CHAT_TEMPLATE,
    )
    folder = tmp_path / "internvl-tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)  # processor.save_pretrained trips on the absent video processor
    (folder / "chat_template.jinja").write_text(processor.chat_template)
    encoder = ENCODERS.get("internvit_300m")(size="tiny", weights=str(folder), runtime=CPU, out_dim=48, batch_views=8)
    strategy = build_strategy("internvl_dynamic", tile_size=448, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    check_family(model, processor, folder, encoder, strategy, "internvl", [(900, 450), (300, 300)])


@pytest.mark.slow
def test_phi3_vision_answers_equal_the_remote_code_merge(tmp_path: Path) -> None:
    """Phi-3-vision has no transformers class: a checkpoint folder in its own layout (config
    `phi3_v`, `model.*` + `lm_head.*`, `model.vision_embed_tokens.*` with the shared `wte`) is
    written by hand; the reference is the remote code's id merge and embedding overwrite
    (tests/references/phi3v_reference.py) feeding transformers' Phi3ForCausalLM and its greedy generate."""
    import json

    from safetensors.torch import save_file
    from transformers import Phi3Config, Phi3ForCausalLM

    from harness.vlm import phi3_vision as phi3_family
    from tests.references.phi3v_reference import image_embedding, processor_input_ids

    tok = phi3_family.Phi3VisionAnswerer.random_tokenizer()
    text = {**TEXT, "num_key_value_heads": 4, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}
    torch.manual_seed(0)
    model = Phi3ForCausalLM(Phi3Config(**text)).eval()
    folder = tmp_path / "phi3-vision-tiny"
    folder.mkdir()
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tensors["model.vision_embed_tokens.wte.weight"] = tensors["model.embed_tokens.weight"].clone()
    tensors["model.vision_embed_tokens.glb_GN"] = torch.zeros(1, 1, 256)  # vision tensors: never read here
    tensors["model.vision_embed_tokens.img_projection.0.weight"] = torch.zeros(48, 256)
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "phi3_v", "architectures": ["Phi3VForCausalLM"], **text,
        "embd_layer": {"embedding_cls": "image", "hd_transform_order": "sub_glb", "use_hd_transform": True},
        "img_processor": {"model_name": "openai/clip-vit-large-patch14-336", "image_dim_out": 1024}}))
    tok.save_pretrained(folder)
    answerer = VLMS.get("phi3_vision")(weights=str(folder), protocol="official", max_new_tokens=NEW_TOKENS,
                                       runtime=CPU)
    assert answerer.config.model_type == "phi3"
    encoder = ENCODERS.get("phi3_vision")
    strategy = build_strategy("phi3_hd", tile_size=336, num_crops=4)
    for k, (w, h) in enumerate([(500, 300), (240, 500)]):
        n = encoder.count_tokens(strategy.plan(w, h))
        visual = torch.randn(n, 48, generator=torch.Generator().manual_seed(k))
        for question in QUESTIONS:
            ans = answerer.answer(visual, question, keep_logits=True)
            ids = processor_input_ids(tok, ans.prompt, [n])
            assert answerer.tokenize(question, n).ids.tolist() == ids[0].tolist()
            with torch.no_grad():
                embeds = image_embedding(model.get_input_embeddings(), ids, [visual], model.config.vocab_size)
                mask = (ids > -1000000).long()
                logits = model(inputs_embeds=embeds, attention_mask=mask).logits[0, -1]
                out = model.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False,
                                     max_new_tokens=NEW_TOKENS)
            assert ans.prompt == f"<|user|>\n<|image_1|>\n{question}<|end|>\n<|assistant|>\n"
            torch.testing.assert_close(ans.first_logits, logits, atol=1e-4, rtol=0)
            assert ans.token_ids == out[0].tolist()


@pytest.mark.slow
def test_original_internvl_layout_equals_its_chat_code(tmp_path: Path) -> None:
    """An InternVL2 / Vintern-style folder (config `internvl_chat` with `llm_config` and
    `template`, `language_model.*` tensors, the checkpoint's own conversation.py with its own
    system message): the harness's prompt ids, first logits and greedy tokens equal the original
    chat code's query and embedding merge (tests/references/internvl_chat_reference.py) feeding Qwen2."""
    import json

    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.references.internvl_chat_reference import chat_query, merged_embeds

    tok = internvl_family.InternVLAnswerer.random_tokenizer()
    text = {**TEXT, "tie_word_embeddings": False, "eos_token_id": tok.convert_tokens_to_ids("<|endoftext|>")}
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(**text)).eval()
    folder = tmp_path / "vintern-tiny"
    folder.mkdir()
    tensors = {f"language_model.{k}": v.detach().clone() for k, v in lm.state_dict().items()}
    tensors["vision_model.embeddings.class_embedding"] = torch.zeros(1, 1, 32)  # vision: never read here
    tensors["mlp1.1.weight"] = torch.zeros(48, 128)
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "internvl_chat", "template": "Hermes-2", "downsample_ratio": 0.5,
        "llm_config": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], **text},
        "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 32}}))
    system = "Bạn là một trợ lý AI hữu ích."
    (folder / "conversation.py").write_text(
        "register_conv_template(\n    Conversation(\n        name='Hermes-2',\n"
        "        system_template='<|im_start|>system\\n{system_message}',\n"
        f"        system_message='{system}',\n"
        "        roles=('<|im_start|>user\\n', '<|im_start|>assistant\\n'),\n"
        "        sep_style=SeparatorStyle.MPT,\n        sep='<|im_end|>',\n    )\n)\n")
    tok.save_pretrained(folder)
    answerer = VLMS.get("internvl")(weights=str(folder), protocol="internvl", max_new_tokens=NEW_TOKENS, runtime=CPU)
    assert answerer.conversation is not None and answerer.conversation.system_message == system
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert answerer.eos_ids == {im_end}
    for k, patches in enumerate((1, 3)):
        visual = torch.randn(256 * patches, 48, generator=torch.Generator().manual_seed(k))
        for question in QUESTIONS:
            asked = question + " Answer the question using a single word or phrase."  # InternVL's eval script
            assert get_benchmark("mme").prompt(Question("q", question, ("Yes",)), "internvl") == asked
            ans = answerer.answer(visual, asked, keep_logits=True)
            ids = tok(chat_query(system, "<|im_end|>", asked, 256, patches), return_tensors="pt")["input_ids"]
            assert answerer.tokenize(asked, visual.shape[0]).ids.tolist() == ids[0].tolist()
            with torch.no_grad():
                embeds = merged_embeds(lm, ids, visual, tok.convert_tokens_to_ids("<IMG_CONTEXT>"))
                logits = lm(inputs_embeds=embeds).logits[0, -1]
                out = lm.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=NEW_TOKENS, eos_token_id=im_end)
            torch.testing.assert_close(ans.first_logits, logits, atol=1e-4, rtol=0)
            assert ans.token_ids == out[0].tolist()
