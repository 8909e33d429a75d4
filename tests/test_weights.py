"""Weights loading: tiny sharded safetensors checkpoints with the real key names (vision and
non-vision tensors) prove that every vision tensor lands where it should, that nothing else
is read, that key maps are strict, and that a missing hub cache gives a helpful error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness.encoders import ENCODERS
from harness.encoders import weights as weights_mod
from harness.encoders.weights import WeightsError
from harness.runtime import Runtime

CPU = Runtime.resolve("cpu", "float32")


def write_sharded(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """index json + 2 shards, keys alternating between shards (as big checkpoints mix them)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}, {}]
    for i, (k, v) in enumerate(sorted(tensors.items())):
        shards[i % 2][k] = v.contiguous().clone()
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        save_file(shard, str(folder / name))
        weight_map.update(dict.fromkeys(shard, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def random_like(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every tensor the loader reads from a checkpoint."""
    seen: list[str] = []
    real = weights_mod.safe_open

    class Spy:
        def __init__(self, *args, **kwargs) -> None:
            self.handle = real(*args, **kwargs)

        def __enter__(self):
            self.inner = self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_tensor(self, key: str) -> torch.Tensor:
            seen.append(key)
            return self.inner.get_tensor(key)

    monkeypatch.setattr(weights_mod, "safe_open", Spy)
    return seen


def tiny(name: str, **kw):
    return ENCODERS.get(name)(size="tiny", weights="random", runtime=CPU, **kw)


def assert_loaded(model: torch.nn.Module, want: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def test_clip_checkpoint_reads_only_the_vision_tower(tmp_path: Path, reads: list[str]) -> None:
    want = random_like(tiny("clip_vit_l14_336").model, 1)
    ckpt = {k.replace("backbone.", "vision_model.", 1): v for k, v in want.items()}
    other = {"text_model.embeddings.token_embedding.weight": torch.randn(50, 8), "logit_scale": torch.tensor(2.0),
             "visual_projection.weight": torch.randn(4, 64), "text_projection.weight": torch.randn(4, 8),
             "vision_model.embeddings.position_ids": torch.arange(577)[None]}
    folder = write_sharded(tmp_path / "clip", {**ckpt, **other})
    enc = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU)
    assert_loaded(enc.model, want)
    assert sorted(reads) == sorted(ckpt)


def test_phi3_vision_checkpoint_maps_backbone_and_hd_connector(tmp_path: Path, reads: list[str]) -> None:
    want = random_like(tiny("phi3_vision").model, 2)
    prefix = "model.vision_embed_tokens."
    ckpt = {}
    for k, v in want.items():
        if k.startswith("backbone."):
            ckpt[prefix + "img_processor.vision_model." + k.removeprefix("backbone.")] = v
        else:  # connector.glb_GN, sub_GN, img_projection.{0,2}.*
            ckpt[prefix + k.removeprefix("connector.")] = v
    assert {k.removeprefix(prefix) for k in ckpt if "img_projection" in k} == {
        "img_projection.0.weight", "img_projection.0.bias", "img_projection.2.weight", "img_projection.2.bias"}
    lm = {"model.embed_tokens.weight": torch.randn(64, 48), prefix + "wte.weight": torch.randn(64, 48),
          "model.layers.0.self_attn.qkv_proj.weight": torch.randn(144, 48), "lm_head.weight": torch.randn(64, 48),
          "model.norm.weight": torch.randn(48)}
    folder = write_sharded(tmp_path / "phi3", {**ckpt, **lm})
    enc = ENCODERS.get("phi3_vision")(size="tiny", weights=str(folder), runtime=CPU)
    assert_loaded(enc.model, want)
    assert sorted(reads) == sorted(ckpt)


def test_internvl_hf_checkpoint(tmp_path: Path, reads: list[str]) -> None:
    want = random_like(tiny("internvit_300m").model, 3)
    ckpt = {k.replace("backbone.", "model.vision_tower.", 1).replace("connector.", "model.multi_modal_projector.", 1): v
            for k, v in want.items()}
    lm = {"model.language_model.embed_tokens.weight": torch.randn(64, 48), "lm_head.weight": torch.randn(64, 48)}
    folder = write_sharded(tmp_path / "ivl3", {**ckpt, **lm})
    enc = ENCODERS.get("internvit_300m")(size="tiny", weights=str(folder), runtime=CPU)
    assert_loaded(enc.model, want)
    assert sorted(reads) == sorted(ckpt)


def to_original_internvl(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> original InternVL / Vintern names, written out by hand (fused qkv)."""
    out: dict[str, torch.Tensor] = {}
    proj = {"layer_norm": "0", "linear_1": "1", "linear_2": "3"}
    for k, v in ours.items():
        if k.startswith("connector."):
            part, leaf = k.removeprefix("connector.").split(".")
            out[f"mlp1.{proj[part]}.{leaf}"] = v
            continue
        k = k.removeprefix("backbone.")
        if k == "embeddings.cls_token":
            out["vision_model.embeddings.class_embedding"] = v
        elif k == "embeddings.position_embeddings":
            out["vision_model.embeddings.position_embedding"] = v
        elif k.startswith("embeddings.patch_embeddings.projection."):
            out["vision_model.embeddings.patch_embedding." + k.rsplit(".", 1)[1]] = v
        else:
            _, _, i, rest = k.split(".", 3)  # encoder.layer.<i>.<rest>
            base = f"vision_model.encoder.layers.{i}."
            if rest.startswith("attention.q_proj."):
                leaf = rest.rsplit(".", 1)[1]
                pre = f"backbone.encoder.layer.{i}.attention."
                out[base + "attn.qkv." + leaf] = torch.cat([ours[pre + f"{n}_proj.{leaf}"] for n in "qkv"])
            elif rest.startswith(("attention.k_proj.", "attention.v_proj.")):
                continue
            else:
                rest = (rest.replace("attention.projection_layer.", "attn.proj.").replace("lambda_1", "ls1")
                        .replace("lambda_2", "ls2").replace("layernorm_before", "norm1")
                        .replace("layernorm_after", "norm2"))
                out[base + rest] = v
    return out


def test_vintern_original_checkpoint_splits_qkv_and_renames(tmp_path: Path, reads: list[str]) -> None:
    want = random_like(tiny("internvit_300m").model, 4)
    ckpt = to_original_internvl(want)
    assert "vision_model.encoder.layers.1.attn.qkv.weight" in ckpt and "mlp1.3.bias" in ckpt
    lm = {"language_model.model.embed_tokens.weight": torch.randn(64, 48),
          "language_model.lm_head.weight": torch.randn(64, 48)}
    folder = write_sharded(tmp_path / "vintern", {**ckpt, **lm})
    enc = ENCODERS.get("internvit_300m")(size="tiny", weights=str(folder), runtime=CPU)
    assert_loaded(enc.model, want)
    assert sorted(reads) == sorted(ckpt)


def test_single_file_checkpoint(tmp_path: Path) -> None:
    want = random_like(tiny("clip_vit_l14_336").model, 5)
    (tmp_path / "one").mkdir()
    save_file({k.replace("backbone.", "vision_model.", 1): v for k, v in want.items()},
              str(tmp_path / "one" / "model.safetensors"))
    enc = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(tmp_path / "one"), runtime=CPU)
    assert_loaded(enc.model, want)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    want = random_like(tiny("clip_vit_l14_336").model, 6)
    ckpt = {k.replace("backbone.", "vision_model.", 1): v for k, v in want.items()}
    dropped = "vision_model.encoder.layers.1.mlp.fc2.bias"
    folder = write_sharded(tmp_path / "missing", {k: v for k, v in ckpt.items() if k != dropped})
    with pytest.raises(WeightsError, match=r"missing key\(s\).*backbone\.encoder\.layers\.1\.mlp\.fc2\.bias"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU)
    extra = "vision_model.encoder.layers.7.mlp.fc1.weight"
    folder = write_sharded(tmp_path / "extra", {**ckpt, extra: torch.zeros(2)})
    with pytest.raises(WeightsError, match=r"unexpected checkpoint key\(s\).*layers\.7\.mlp\.fc1\.weight"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU)
    # a full-size checkpoint into a tiny model: shape error names both keys
    bad = dict(ckpt)
    bad["vision_model.post_layernorm.weight"] = torch.zeros(1024)
    folder = write_sharded(tmp_path / "shape", bad)
    with pytest.raises(WeightsError, match=r"post_layernorm\.weight has shape \(1024,\)"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU)


def test_checkpoint_without_connector_weights_is_refused(tmp_path: Path) -> None:
    want = random_like(tiny("clip_vit_l14_336").model, 7)
    folder = write_sharded(tmp_path / "clip", {k.replace("backbone.", "vision_model.", 1): v for k, v in want.items()})
    with pytest.raises(WeightsError, match="no weights for connector 'llava_next'"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU, connector="llava_next",
                                         out_dim=48)


def test_offline_without_cache_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsError) as info:
        ENCODERS.get("clip_vit_l14_336")(size="full", weights="pretrained", runtime=CPU)
    msg = str(info.value)
    assert "openai/clip-vit-large-patch14-336" in msg and "not in the local Hugging Face cache" in msg
    assert "weights=<that folder>" in msg and "weights=random" in msg


def test_not_a_folder_nor_hub_id(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not a folder and not a hub id"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(tmp_path / "nope" / "deeper"), runtime=CPU)
    (tmp_path / "pkl").mkdir()
    (tmp_path / "pkl" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(WeightsError, match="pickle checkpoints are not read"):
        ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(tmp_path / "pkl"), runtime=CPU)


def test_hub_id_resolves_from_the_local_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id found in the Hugging Face cache (layout models--owner--name/snapshots/<rev>) loads
    offline, reading only the vision tensors."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--OpenGVLab--InternVL3-1B-hf"
    rev = "0" * 40
    want = random_like(tiny("internvit_300m").model, 8)
    ckpt = {k.replace("backbone.", "model.vision_tower.", 1).replace("connector.", "model.multi_modal_projector.", 1): v
            for k, v in want.items()}
    write_sharded(repo / "snapshots" / rev, {**ckpt, "lm_head.weight": torch.randn(64, 48)})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    enc = ENCODERS.get("internvit_300m")(size="tiny", weights="OpenGVLab/InternVL3-1B-hf", runtime=CPU)
    assert_loaded(enc.model, want)
    assert enc.identity()["weights_source"] == str(repo / "snapshots" / rev)


def _tiny_llava_next():
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    from harness.encoders.clip_vit import CLIP_TINY

    text = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=64)
    torch.manual_seed(3)
    config = LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", **CLIP_TINY}, text_config={"model_type": "llama", **text},
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    return LlavaNextForConditionalGeneration(config).eval()


@pytest.mark.parametrize("layout", ["save_pretrained", "model_prefixed"])
def test_llava_next_checkpoint_fills_clip_and_its_connector(tmp_path: Path, reads: list[str], layout: str) -> None:
    """A LLaVA-NeXT checkpoint as transformers writes it (hub names: `vision_tower.vision_model.*`,
    `multi_modal_projector.*`, `image_newline`) or with its in-memory `model.` names: the CLIP
    tower, projector and newline land in clip_vit_l14_336 + llava_next, the LM is never read,
    and the features equal transformers' own LlavaNextModel.get_image_features."""
    from harness.types import Layout, Views

    peer = _tiny_llava_next()
    folder = tmp_path / layout
    if layout == "save_pretrained":
        peer.save_pretrained(folder, max_shard_size="100KB")
    else:
        write_sharded(folder, {k: v.detach() for k, v in peer.state_dict().items()})
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    if layout == "save_pretrained":  # transformers 5 names; the hub's older files say vision_tower.vision_model.*
        assert any(k.startswith("vision_tower.embeddings.") for k in index)
    else:
        assert any(k.startswith("model.vision_tower.") for k in index)
    ours = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(folder), runtime=CPU, connector="llava_next",
                                            out_dim=48, batch_views=4)
    assert reads and not any("language_model" in k or "lm_head" in k for k in reads)
    assert all("vision_tower" in k or "multi_modal_projector" in k or "image_newline" in k for k in reads)
    torch.testing.assert_close(ours.model.connector.image_newline, peer.model.image_newline, rtol=0, atol=0)
    w, h, r, c = 704, 396, 2, 2
    lay = Layout(strategy="llava_anyres", original_size=(w, h), tile_size=336, grid=(r, c),
                 resized_size=(336 * c, 336 * r), canvas_size=(336 * c, 336 * r),
                 content_box=(0, 0, 336 * c, 336 * r), has_global=True, global_position="first", n_views=1 + r * c,
                     executed_views=1 + r * c)
    pixels = torch.randn(lay.executed_views, 3, 336, 336)
    with torch.no_grad():
        want = peer.model.get_image_features(
            pixel_values=pixels[None], image_sizes=torch.tensor([[h, w]]), vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        ).pooler_output[0]
    (out,), _ = ours.encode([Views(pixels, lay)])
    assert out.num_tokens == len(want) == ours.num_tokens(lay)
    torch.testing.assert_close(out.tokens, want, atol=1e-5, rtol=1e-4)


def test_llava_next_tower_alone_under_the_flat_connector(tmp_path: Path) -> None:
    """connector=flat takes only the CLIP tower of a LLaVA-NeXT checkpoint, here with the hub's
    older `vision_tower.vision_model.*` names."""
    peer = _tiny_llava_next()
    def hub_name(key: str) -> str:
        if key.startswith("model.vision_tower."):
            return "vision_tower.vision_model." + key.removeprefix("model.vision_tower.")
        return key.removeprefix("model.")

    state = {hub_name(k): v.detach() for k, v in peer.state_dict().items()}
    assert "vision_tower.vision_model.embeddings.class_embedding" in state and "image_newline" in state
    write_sharded(tmp_path / "llava", state)
    ours = ENCODERS.get("clip_vit_l14_336")(size="tiny", weights=str(tmp_path / "llava"), runtime=CPU)
    want = peer.model.vision_tower.state_dict()
    got = ours.model.backbone.state_dict()
    for k, v in want.items():
        if not k.endswith("position_ids"):
            assert torch.equal(got[k], v), k


@pytest.mark.parametrize("server", ["silent", "closed"])
def test_hub_id_without_cache_or_network_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    """Not offline by setting, but the hub does not answer (a port that accepts and never
    replies, or nothing listening): the offline message within a few seconds, not after
    huggingface_hub's ~50 s of retries."""
    import socket
    import time

    from huggingface_hub import constants

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server == "silent":
        listener.listen(1)
    else:
        listener.close()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    encoder_cls = ENCODERS.get("clip_vit_l14_336")  # imports transformers: not part of the wait
    start = time.monotonic()
    try:
        with pytest.raises(WeightsError) as info:
            encoder_cls(size="full", weights="pretrained", runtime=CPU)
    finally:
        listener.close()
    assert time.monotonic() - start < 8
    msg = str(info.value)
    assert "openai/clip-vit-large-patch14-336" in msg and "hub cannot be reached" in msg
    assert "weights=<that folder>" in msg and "weights=random" in msg
