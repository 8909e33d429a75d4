"""CLIP text-tower MME baseline with a tiny random CLIPModel (no download)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from harness.benchmarks.mme.clip_similarity import clip_similarities, mme_similarities, strip_prompt
from harness.benchmarks.mme.scoring import pairwise_accuracy, score, threshold_predictions
from harness.benchmarks.mme.subtasks import ANSWER_SUFFIX as MME_SUFFIX


@pytest.fixture(scope="module")
def model() -> CLIPModel:
    text = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=336,
                  patch_size=14)
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()


def char_tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    """A stand-in tokenizer: BOS, one id per character (first 30), EOS, right padding."""
    seqs = [[1] + [3 + ord(c) % 97 for c in t[:30]] + [2] for t in texts]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    lengths = torch.tensor([len(s) for s in seqs])
    return {"input_ids": ids, "attention_mask": (torch.arange(width)[None] < lengths[:, None]).long()}


def test_strip_prompt():
    assert strip_prompt("Is there a train in this image?" + MME_SUFFIX) == "Is there a train in this image?"
    assert strip_prompt("Is this Muktinath?") == "Is this Muktinath?"


def test_similarities_match_clip_logits(model):
    pixels = torch.randn(3, 3, 336, 336, generator=torch.Generator().manual_seed(1))
    tokens = char_tokenize(["a red circle", "a blue square in the corner"])
    sims = clip_similarities(model, pixels, tokens["input_ids"], tokens["attention_mask"])
    with torch.no_grad():
        reference = model(pixel_values=pixels, **tokens).logits_per_image / model.logit_scale.exp()
    np.testing.assert_allclose(sims, reference.numpy(), rtol=1e-4, atol=1e-5)
    assert np.all(np.abs(sims) <= 1 + 1e-6)


def test_mme_pipeline_from_similarities(model):
    gen = torch.Generator().manual_seed(2)
    rows, pixels = [], {}
    for i in range(8):
        qid = f"existence/{i:04d}.jpg"
        pixels[qid] = torch.randn(3, 336, 336, generator=gen)
        rows += [{"question_id": qid, "category": "existence", "question": f"Is there a cat {i}?" + MME_SUFFIX,
                  "answer": "Yes"},
                 {"question_id": qid, "category": "existence", "question": f"Is there a dog {i}?" + MME_SUFFIX,
                  "answer": "No"}]
    seen: list[str] = []

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        seen.extend(texts)
        return char_tokenize(texts)

    frame = mme_similarities(model, tokenize, pixels, pd.DataFrame(rows))
    assert not any(MME_SUFFIX.strip() in t for t in seen)
    ids = sorted(pixels)
    direct = clip_similarities(model, torch.stack([pixels[i] for i in ids]), **char_tokenize([seen[5]]))
    assert frame.loc[5, "similarity"] == pytest.approx(direct[ids.index(frame.loc[5, "question_id"]), 0], abs=1e-5)
    predictions, thresholds = threshold_predictions(frame)
    result = score(predictions)["subtasks"]["existence"]
    assert result["n_images"] == 4 and 0 <= result["score"] <= 200 and set(thresholds) == {"existence"}
    assert 0 <= pairwise_accuracy(frame)["existence"] <= 100
    with pytest.raises(ValueError, match="no pixels"):
        mme_similarities(model, tokenize, {}, pd.DataFrame(rows))
