"""Attention scores and keys of one layer, recomputed from that layer's input hidden state.

Reductions need the CLS attention (and keys) of a single layer. Asking transformers for
`output_attentions` forces eager attention in every layer; instead we take the layer's input
(from `output_hidden_states`), apply its pre-attention norm and q/k projections, and compute
only the CLS row. Equal to eager attention weights (tests/test_reduce.py::test_scores_equal_eager_attention).
Which layer each method reads: docs/token_reduction.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QK:
    """Queries and keys `[N, T, C]` (full width, before any scaling) of one layer."""

    q: torch.Tensor
    k: torch.Tensor
    num_heads: int
    scale: float  # per-head softmax scale of the layer (head_dim ** -0.5)


def layer_qk(layer: nn.Module, hidden: torch.Tensor) -> QK:
    """q and k of one encoder layer from its input `hidden` `[N, T, C]`.

    CLIP (`CLIPEncoderLayer`): `layer_norm1`, then `self_attn.q_proj` / `k_proj`.
    InternViT (`InternVLVisionLayer`): `layernorm_before`, then `attention.q_proj` / `k_proj`
    and its `q_norm` / `k_norm` (identity unless `use_qk_norm`).
    """
    if hasattr(layer, "layer_norm1") and hasattr(layer, "self_attn"):
        attn, x = layer.self_attn, layer.layer_norm1(hidden)
        q, k = attn.q_proj(x), attn.k_proj(x)
    elif hasattr(layer, "layernorm_before") and hasattr(layer, "attention"):
        attn, x = layer.attention, layer.layernorm_before(hidden)
        q, k = attn.q_norm(attn.q_proj(x)), attn.k_norm(attn.k_proj(x))
    else:
        raise TypeError(f"no attention-score recipe for layer type {type(layer).__name__}")
    return QK(q=q, k=k, num_heads=int(attn.num_heads), scale=float(attn.scale))


def cls_attention(qk: QK) -> torch.Tensor:
    """`[N, T-1]`: the CLS row of softmax(q k^T * scale) per head, summed over heads, patch
    columns only (= eager `attentions[layer][:, :, 0, 1:].sum(1)`)."""
    n, t, c = qk.k.shape
    h = qk.num_heads
    q = qk.q[:, 0].reshape(n, h, 1, c // h).float()
    k = qk.k.reshape(n, t, h, c // h).transpose(1, 2).float()
    weights = torch.softmax((q @ k.transpose(-1, -2)) * qk.scale, dim=-1)  # [N, H, 1, T]
    return weights[:, :, 0, 1:].sum(dim=1).to(qk.q.dtype)


def mean_keys(qk: QK) -> torch.Tensor:
    """`[N, T-1, C/H]`: patch keys averaged over heads (VisionZip's merge metric)."""
    n, t, c = qk.k.shape
    return qk.k.reshape(n, t, qk.num_heads, c // qk.num_heads).mean(dim=2)[:, 1:]


def single_head_cls_attention(qk: QK) -> torch.Tensor:
    """`[N, T-1]`: PruMerge's score, softmax(q_cls . k / sqrt(C)) at full width C, patch columns."""
    c = qk.q.shape[-1]
    logits = (qk.q[:, :1] @ qk.k.transpose(-1, -2)) * c**-0.5
    return torch.softmax(logits, dim=-1)[:, 0, 1:]


def scoring_layers(num_layers: int, feature_layer: int) -> tuple[int, int]:
    """(layer producing the features, layer consuming them) for `hidden_states[feature_layer]`.

    `hidden_states[h]` is the output of layer h - 1 and the input of layer h. VisionZip and
    cls_topk read layer h - 1 (`attentions[-2]` for features `hidden_states[-2]`); PruMerge reads
    layer h (`layers[23]` of 24 for `hidden_states[-2]`), or h - 1 when the features are the
    last layer's output (there is no layer after it).
    """
    h = feature_layer % (num_layers + 1)
    if h == 0:
        raise ValueError("feature_layer 0 (the embeddings) has no attention layer to score tokens with")
    return h - 1, (h if h < num_layers else h - 1)


def compute_scores(
    layers: nn.ModuleList | list[nn.Module], hidden_states: tuple[torch.Tensor, ...], feature_layer: int,
    needs: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """The score tensors a reducer `needs` (names in harness.reduce.base.SCORES), CLS dropped."""
    out: dict[str, torch.Tensor] = {}
    if not needs:
        return out
    produce, consume = scoring_layers(len(layers), feature_layer)
    if "cls_attn" in needs or "keys" in needs:
        qk = layer_qk(layers[produce], hidden_states[produce])
        if "cls_attn" in needs:
            out["cls_attn"] = cls_attention(qk)
        if "keys" in needs:
            out["keys"] = mean_keys(qk)
    if "pm_attn" in needs or "pm_keys" in needs:
        qk = layer_qk(layers[consume], hidden_states[consume])
        out["pm_attn"] = single_head_cls_attention(qk)
        out["pm_keys"] = qk.k[:, 1:]
    return out
