"""CLIP's text tower as an encoder-only MME baseline (docs/mme.md): s(q) = cosine between the
image's projected embedding (`visual_projection` of the post-LN CLS) and the question's
projected text embedding, with MME's ` Please answer yes or no.` suffix removed.

The caller hands in a loaded `transformers.CLIPModel` and a tokenizer (nothing is loaded
here); `harness.benchmarks.mme.scoring.threshold_predictions` turns the similarities into legitimate MME
predictions and `pairwise_accuracy` into the separate pairwise figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.benchmarks.mme.subtasks import strip_answer_suffix as strip_prompt  # CLIP would only see noise in it


def _features(out: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding;
    # older versions return the tensor itself.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.inference_mode()
def clip_similarities(
    model: Any, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
) -> np.ndarray:
    """Cosine similarity `[n_images, n_texts]` of CLIP's projected, L2-normalised image and
    text embeddings (CLIP's `logits_per_image` divided by its logit scale)."""
    device = next(model.parameters()).device
    image = _features(model.get_image_features(pixel_values=pixel_values.to(device)))
    mask = None if attention_mask is None else attention_mask.to(device)
    text = _features(model.get_text_features(input_ids=input_ids.to(device), attention_mask=mask))
    image = torch.nn.functional.normalize(image.float(), dim=-1)
    text = torch.nn.functional.normalize(text.float(), dim=-1)
    return (image @ text.T).cpu().numpy().astype(np.float64)


def mme_similarities(
    model: Any,
    tokenize: Callable[[list[str]], Mapping[str, torch.Tensor]],
    pixels: Mapping[str, torch.Tensor],
    questions: pd.DataFrame,
) -> pd.DataFrame:
    """`questions` (question_id, category, question, answer) with a `similarity` column added.

    `pixels[question_id]` is the image's `[3, S, S]` CLIP input; `tokenize(texts)` returns
    `input_ids` (and optionally `attention_mask`), e.g. a CLIPTokenizer called with
    `padding=True, truncation=True, max_length=77, return_tensors="pt"` (long cognition
    questions are truncated at CLIP's 77-token context)."""
    missing = [c for c in ("question_id", "category", "question", "answer") if c not in questions.columns]
    if missing:
        raise ValueError(f"questions need columns {', '.join(missing)}")
    absent = sorted(set(questions["question_id"]) - set(pixels))
    if absent:
        raise ValueError(f"no pixels for {len(absent)} question_id(s), e.g. {absent[:3]}")
    ids = sorted(set(questions["question_id"]))
    batch = torch.stack([pixels[i] for i in ids])
    tokens = tokenize([strip_prompt(q) for q in questions["question"]])
    sims = clip_similarities(model, batch, tokens["input_ids"], tokens.get("attention_mask"))
    row_of = {qid: n for n, qid in enumerate(ids)}
    out = questions.copy()
    out["similarity"] = [sims[row_of[qid], j] for j, qid in enumerate(questions["question_id"])]
    return out
