# ruff: noqa: E501, RUF005, UP034, UP018, RUF046  (kept close to the reference text)
"""Transcriptions of the reference token-reduction forwards, adapted to run on a tiny random
transformers CLIPVisionModel (eager attention). Used only by tests/test_reduce_reference.py.

- VisionZip: dvlab-research/VisionZip `visionzip/clip_encoder.py`,
  `CLIPVisionTower_VisionZip.forward` (batched branch), with `dominant_num = dominant - 1` as
  `visionzip/main.py` passes it to `apply_info`, and the layer's `metric` (the patched
  `CLIPAttention_forward`'s `raw_key_states.mean(1)`) captured by a hook on `k_proj` of
  `layers[-2]`.
- PruMerge: 42Shawn/LLaVA-PruMerge `llava/model/multimodal_encoder/clip_encoder.py`,
  `token_prune_merge_advanced` and `token_prune_merge_advanced_plus`, `outlier_dectection`,
  `complement_idx`; `layers[23]` (the last of 24) becomes the last layer of the tiny model and
  the hard-coded 575 becomes N - 1. Kept indices are returned alongside. transformers 5's
  CLIPVisionModel has its layers at `encoder.layers` (no `vision_model` level).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def visionzip_reference(vision_tower, images, dominant: int, contextual: int):
    layer = vision_tower.encoder.layers[-2]
    captured = {}
    handle = layer.self_attn.k_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("k", o))
    image_forward_outs = vision_tower(images, output_hidden_states=True, output_attentions=True)
    handle.remove()
    bsz, tgt_len, _ = captured["k"].shape
    heads = layer.self_attn.num_heads
    raw_key_states = captured["k"].view(bsz, tgt_len, heads, -1).transpose(1, 2)
    metric = raw_key_states.mean(1)

    attn_weights = image_forward_outs.attentions[-2]
    hidden_states = image_forward_outs.hidden_states[-2]
    dominant_num = dominant - 1
    contextual_num = contextual

    cls_idx = 0
    cls_attention = attn_weights[:, :, cls_idx, cls_idx + 1:]
    cls_attention_sum = cls_attention.sum(dim=1)
    topk_indices = cls_attention_sum.topk(dominant_num, dim=1).indices + 1
    all_indices = torch.cat([torch.zeros((hidden_states.shape[0], 1), dtype=topk_indices.dtype,
                                         device=topk_indices.device), topk_indices], dim=1)
    mask = torch.ones_like(hidden_states[:, :, 0], dtype=torch.bool, device=metric.device).scatter_(1, all_indices, False)
    dominant_tokens = hidden_states.masked_select(~mask.unsqueeze(-1)).view(
        hidden_states.shape[0], dominant_num + 1, hidden_states.shape[2])

    metric_filtered = metric[mask].view(hidden_states.shape[0], hidden_states.shape[1] - (dominant_num + 1), metric.shape[2])
    hidden_states_filtered = hidden_states.masked_select(mask.unsqueeze(-1)).view(
        hidden_states.shape[0], hidden_states.shape[1] - (dominant_num + 1), hidden_states.shape[2])
    metric_normalized = metric_filtered / metric_filtered.norm(dim=-1, keepdim=True)

    step = max(1, metric_normalized.shape[1] // contextual_num)
    target_indices = torch.arange(0, metric_normalized.shape[1], step, device=metric_normalized.device)[:contextual_num]
    target_tokens = metric_normalized[:, target_indices, :]
    tokens_to_merge = metric_normalized[:, ~torch.isin(torch.arange(metric_normalized.shape[1],
                                                                    device=metric_normalized.device), target_indices), :]
    similarity = torch.bmm(tokens_to_merge, target_tokens.transpose(1, 2))
    assign_one_hot = torch.zeros(tokens_to_merge.shape[0], tokens_to_merge.shape[1], contextual_num,
                                 dtype=hidden_states_filtered.dtype, device=metric_normalized.device)
    assign_one_hot.scatter_(2, similarity.argmax(dim=2).unsqueeze(-1), 1)
    counts = assign_one_hot.sum(dim=1).clamp(min=1).unsqueeze(-1)
    hidden_to_merge = hidden_states_filtered[:, ~torch.isin(torch.arange(hidden_states_filtered.shape[1],
                                                                         device=hidden_states_filtered.device), target_indices), :]
    aggregated_hidden = torch.bmm(assign_one_hot.transpose(1, 2), hidden_to_merge) / counts
    target_hidden = hidden_states_filtered[:, target_indices, :]
    contextual_tokens = target_hidden + aggregated_hidden
    hidden_states_save = torch.cat([dominant_tokens, contextual_tokens], dim=1).to(images.dtype)
    return hidden_states_save, all_indices


def complement_idx(idx, dim):
    a = torch.arange(dim, device=idx.device)
    ndim = idx.ndim
    dims = idx.shape
    n_idx = dims[-1]
    dims = dims[:-1] + (-1, )
    for _ in range(1, ndim):
        a = a.unsqueeze(0)
    a = a.expand(*dims)
    masked = torch.scatter(a, -1, idx, 0)
    compl, _ = torch.sort(masked, dim=-1, descending=False)
    compl = compl.permute(-1, *tuple(range(ndim - 1)))
    compl = compl[n_idx:].permute(*(tuple(range(1, ndim)) + (0,)))
    return compl


def outlier_dectection(attn):
    attn_np = attn.to(dtype=torch.float32).cpu().numpy().flatten()
    Q1 = np.percentile(attn_np, 25)
    Q3 = np.percentile(attn_np, 75)
    IQR = Q3 - Q1
    upper_bound = Q3 + 1.5 * IQR
    outlier_indices = np.where((attn_np > upper_bound))[0]
    ratio = len(outlier_indices) / len(attn_np)
    return ratio


def prumerge_reference(vision_tower, images, plus: bool, if_adaptive: bool = True, reduction_ratio: float = 1 / 8,
                       select_layer: int = -2):
    """`token_prune_merge_advanced` (plus=False) / `token_prune_merge_advanced_plus` (plus=True)."""
    outputs = {}
    last = vision_tower.encoder.layers[-1]
    hook_handle_k = last.self_attn.k_proj.register_forward_hook(lambda m, i, o: outputs.__setitem__("desired_k", o))
    hook_handle_q = last.self_attn.q_proj.register_forward_hook(lambda m, i, o: outputs.__setitem__("desired_q", o))
    image_forward_outs = vision_tower(images, output_hidden_states=True)
    image_features = image_forward_outs.hidden_states[select_layer][:, 1:].to(images.dtype)
    B, N, C = image_features.shape
    desired_layer_k = outputs["desired_k"]
    desired_layer_q = outputs["desired_q"]
    hook_handle_k.remove()
    hook_handle_q.remove()

    attn = (desired_layer_q @ desired_layer_k.transpose(-2, -1)) * C ** -0.5
    attn = F.softmax(attn, dim=-1)
    cls_attn = attn[:, 0, 1:]

    if if_adaptive:
        reduction_ratio = outlier_dectection(cls_attn)
    _, idx = torch.topk(cls_attn, int(N * reduction_ratio), dim=1, largest=True)

    if plus:
        if if_adaptive:
            step_length = int(1 / reduction_ratio)
            arithmetic_sequence = torch.arange(0, N - 1, int(step_length / 3))
            original_tensor_1d = idx.flatten()
            filtered_sequence = torch.tensor([x for x in arithmetic_sequence if x not in original_tensor_1d])
            concatenated_tensor = torch.cat((idx, filtered_sequence.unsqueeze(0)), dim=1)
            idx = concatenated_tensor
        else:
            step_length = int(1 / reduction_ratio)
            new_idx = torch.zeros((idx.size(0), idx.size(1) * 2), dtype=torch.long)
            for i in range(idx.size(0)):
                arithmetic_sequence = torch.arange(int(step_length / 2), N - 1, int(step_length))
                original_tensor_1d = idx[i].flatten()
                filtered_sequence = arithmetic_sequence
                concatenated_tensor = torch.cat((original_tensor_1d, filtered_sequence), dim=0)
                new_idx[i] = concatenated_tensor
            idx = new_idx

    index = idx.unsqueeze(-1).expand(-1, -1, C)
    Key_wo_cls = desired_layer_k[:, 1:]
    x_others = torch.gather(image_features, dim=1, index=index)
    x_others_attn = torch.gather(cls_attn, dim=1, index=idx)
    Key_others = torch.gather(Key_wo_cls, dim=1, index=index)
    compl = complement_idx(idx, N)
    non_topk = torch.gather(image_features, dim=1, index=compl.unsqueeze(-1).expand(-1, -1, C))
    non_topk_Key = torch.gather(Key_wo_cls, dim=1, index=compl.unsqueeze(-1).expand(-1, -1, C))
    non_topk_attn = torch.gather(cls_attn, dim=1, index=compl)
    Key_others_norm = F.normalize(Key_others, p=2, dim=-1)
    non_topk_Key_norm = F.normalize(non_topk_Key, p=2, dim=-1)

    B, left_tokens, C = x_others.size()
    updated_x_others = torch.zeros_like(x_others)
    for b in range(B):
        for i in range(left_tokens):
            key_others_norm = Key_others_norm[b, i, :].unsqueeze(0).unsqueeze(0)
            before_i_Key = Key_others_norm[b, :i, :].unsqueeze(0)
            after_i_Key = Key_others_norm[b, i + 1:, :].unsqueeze(0)
            before_i_x_others = x_others[b, :i, :].unsqueeze(0)
            after_i_x_others = x_others[b, i + 1:, :].unsqueeze(0)
            rest_x_others = torch.cat([before_i_x_others, after_i_x_others, non_topk[b, :, :].unsqueeze(0)], dim=1)
            before_i_x_others_attn = x_others_attn[b, :i].unsqueeze(0)
            after_i_x_others_attn = x_others_attn[b, i + 1:].unsqueeze(0)
            rest_x_others_attn = torch.cat([before_i_x_others_attn, after_i_x_others_attn,
                                            non_topk_attn[b, :].unsqueeze(0)], dim=1)
            rest_Keys = torch.cat([before_i_Key, after_i_Key, non_topk_Key_norm[b, :, :].unsqueeze(0)], dim=1)
            cos_sim_matrix = torch.bmm(key_others_norm, rest_Keys.transpose(1, 2))
            _, cluster_indices = torch.topk(cos_sim_matrix, k=int(32), dim=2, largest=True)
            cluster_tokens = rest_x_others[:, cluster_indices.squeeze(), :]
            weights = rest_x_others_attn[:, cluster_indices.squeeze()].unsqueeze(-1)
            weighted_avg = torch.sum(cluster_tokens * weights, dim=1)
            updated_center = weighted_avg + x_others[b, i, :]
            updated_x_others[b, i, :] = updated_center

    extra_one_token = torch.sum(non_topk * non_topk_attn.unsqueeze(-1), dim=1, keepdim=True)
    updated_x_others = torch.cat([updated_x_others, extra_one_token], dim=1)
    return updated_x_others, idx
