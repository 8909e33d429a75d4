"""Reduction wired into encoders, jobs, the runner and harness.tokens: the encoder's forward
gives the analytic count for every accepted pairing, `reduce=none` changes no key, hash or
column, refused pairings exit 2 before any model loads, records carry the method."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.config import ConfigError, compose
from harness.encoders import ENCODERS
from harness.pipeline.job import prepare_job
from harness.preprocess import build_strategy
from harness.reduce import REDUCERS, build_reducer
from harness.runtime import Runtime
from harness.types import Views
from tests.helpers.cli import cli
from tests.helpers.reduce import PHI3_REASON

CPU = Runtime.resolve("cpu", "float32")
CASES = [  # encoder, connector, strategy
    ("clip_vit_l14_336", None, "center_crop"),
    ("clip_vit_l14_336", None, "llava_anyres"),
    ("clip_vit_l14_336", "llava_next", "llava_anyres"),
    ("internvit_300m", None, "internvl_dynamic"),
    ("internvit_300m", "flat", "resize"),
]
REDUCTIONS = [("cls_topk", {"keep": 20}), ("uniform", {"keep": 30}), ("pool", {"stride": 3}),
              ("visionzip", {"dominant": 12, "contextual": 4}), ("prumerge", {"adaptive": False}),
              ("prumerge", {"variant": "prumerge_plus"})]
REDUCTIONS += [(name, {}) for name in REDUCERS.names() if name not in {m for m, _ in REDUCTIONS} | {"none"}]

UNREDUCIBLE = {  # encoder: the reason its declaration gives (checked before any model loads)
    "siglip_so400m": "encoder 'siglip_so400m' cannot be reduced (reduce={}): it has no CLS token",
    "qwen2_5_vl_vit": "encoder 'qwen2_5_vl_vit' cannot be reduced (reduce={}): it has no CLS token, and its patch "
                      "merger runs inside the ViT",
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
@pytest.mark.parametrize(("encoder", "connector", "strategy"), CASES)
@torch.no_grad()
def test_encoder_forward_equals_count(encoder: str, connector: str | None, strategy: str) -> None:
    cls = ENCODERS.get(encoder)
    enc = cls(size="tiny", weights="random", runtime=CPU, batch_views=5, connector=connector)
    s = build_strategy(strategy, tile_size=cls.tile_size)
    layouts = [s.plan(w, h) for w, h in ((1920, 1080), (300, 900), (cls.tile_size, cls.tile_size))]
    torch.manual_seed(0)
    batch = [Views(torch.randn(lay.executed_views, 3, cls.tile_size, cls.tile_size), lay) for lay in layouts]
    plain, _ = enc.encode(batch)
    for name, params in REDUCTIONS:
        reducer = build_reducer(name, **params)
        enc.use_reduction(reducer)
        outputs, stages = enc.encode(batch)
        assert set(stages) == {"h2d", "backbone", "reduce", "connector"}
        for views, out, ref in zip(batch, outputs, plain, strict=True):
            n = enc.num_tokens(views.layout)
            lo, hi = cls.token_range(views.layout, enc.connector_name, reducer)
            assert (out.num_tokens == n) if n is not None else (lo <= out.num_tokens <= hi), (name, views.layout)
            assert out.tokens.shape[1] == ref.tokens.shape[1] and out.pooled.shape == ref.pooled.shape
            assert torch.isfinite(out.tokens).all()
        alone, _ = enc.encode(batch[-1:])  # batching does not change a reduced image
        torch.testing.assert_close(alone[0].tokens, outputs[-1].tokens, atol=1e-4, rtol=1e-4)
    enc.use_reduction(build_reducer("none"))
    again, stages = enc.encode(batch)
    assert set(stages) == {"h2d", "backbone", "connector"}
    torch.testing.assert_close(again[0].tokens, plain[0].tokens)


@torch.no_grad()
def test_pool_stride_1_on_flat_equals_no_reduction() -> None:
    """The reduced path (hidden states, rules, projection) reproduces the plain one when the
    reduction keeps every token: same tokens and same mean_patch embedding."""
    for encoder, connector, strategy in (("clip_vit_l14_336", None, "center_crop"),
                                         ("internvit_300m", None, "internvl_dynamic")):
        cls = ENCODERS.get(encoder)
        enc = cls(size="tiny", weights="random", runtime=CPU, connector=connector)
        layout = build_strategy(strategy, tile_size=cls.tile_size).plan(900, 500)
        batch = [Views(torch.randn(layout.executed_views, 3, cls.tile_size, cls.tile_size), layout)]
        plain, _ = enc.encode(batch)
        enc.use_reduction(build_reducer("pool", stride=1))
        pooled, _ = enc.encode(batch)
        torch.testing.assert_close(pooled[0].tokens, plain[0].tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pooled[0].pooled, plain[0].pooled, atol=1e-5, rtol=1e-5)


def test_none_changes_no_key_hash_or_column() -> None:
    base = ["encoder.size=tiny", "encoder.weights=random"]
    plain = prepare_job(compose(base))
    none = prepare_job(compose([*base, "reduce=none"]))
    assert plain.reducer is None and none.reducer is None
    assert "reduce" not in plain.key() and plain.config_hash == none.config_hash
    ident = plain.identity("r")
    assert not any(k == "reduce" or k.startswith(("rd_", "reduce_")) for k in ident)
    vz = prepare_job(compose([*base, "reduce=visionzip", "reduce.dominant=54", "reduce.contextual=10"]))
    assert vz.key()["reduce"] == {"name": "visionzip", "dominant": 54, "contextual": 10}
    assert vz.config_hash != plain.config_hash
    ident = vz.identity("r")
    assert (ident["reduce"], ident["rd_dominant"], ident["rd_contextual"]) == ("visionzip", 54, 10)
    other = prepare_job(compose([*base, "reduce=visionzip", "reduce.dominant=53", "reduce.contextual=11"]))
    assert other.config_hash != vz.config_hash


@pytest.mark.parametrize(("args", "needle"), [
    (["encoder=phi3_vision", "preprocess=native", "reduce=pool"], PHI3_REASON),
    (["encoder=siglip_so400m", "reduce=uniform"], UNREDUCIBLE["siglip_so400m"].format("uniform")),
    (["encoder=qwen2_5_vl_vit", "preprocess=native", "reduce=visionzip"],
     UNREDUCIBLE["qwen2_5_vl_vit"].format("visionzip")),
    (["encoder=internvit_300m", "reduce=uniform", "reduce.keep=300"], "reduce.keep must be in 1..256"),
    (["reduce=visionzip", "reduce.dominant=0"], "reduce.dominant must be an integer >= 1"),
    (["reduce=fastv"], "unknown reduce 'fastv'; valid choices: cls_topk, none, pool, prumerge, uniform, visionzip"),
    (["reduce=prumerge", "+reduce.keep=3"], "unknown key reduce.keep for reduce=prumerge"),
])
def test_refusals_exit_2_before_any_model(tmp_path: Path, args: list[str], needle: str) -> None:
    res = cli("harness", *args, "encoder.size=tiny", "encoder.weights=random", f"results_dir={tmp_path}",
              cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()




@pytest.mark.parametrize("method", [m for m in REDUCERS.names() if m != "none"])
@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_every_encoder_either_reduces_or_is_refused_before_loading(encoder: str, method: str) -> None:
    """Every encoder x reduction pairing is settled by the declarations before any model exists:
    refused with the encoder's reason, or accepted and counted (the forward is checked by
    test_encoder_forward_equals_count)."""
    config = compose([f"encoder={encoder}", "preprocess=native", f"reduce={method}", "encoder.size=tiny",
                      "encoder.weights=random"])
    if encoder in UNREDUCIBLE:
        with pytest.raises(ConfigError) as err:
            prepare_job(config)
        assert str(err.value).startswith(UNREDUCIBLE[encoder].format(method)) and "use reduce=none" in str(err.value)
        return
    cls = ENCODERS.get(encoder)
    assert cls.qk_recipe is not None
    try:
        job = prepare_job(config)
    except ConfigError as exc:  # refused by the native connector, with its declared reason
        conn = cls.connector_for(None)
        assert conn.no_reduction is not None and str(exc).endswith(conn.no_reduction)
        return
    layout = job.strategy.plan(900, 500)
    lo, hi = cls.token_range(layout, None, job.reducer)
    assert 1 <= lo <= hi


@pytest.mark.parametrize("encoder", sorted(UNREDUCIBLE))
def test_tokens_command_refuses_an_unreducible_encoder(encoder: str) -> None:
    """harness.tokens reads the same declarations as a run: exit 2 with the reason, no count."""
    res = cli("harness.tokens", f"encoder={encoder}", "preprocess=native", "reduce=pool", "format=json")
    assert res.returncode == 2 and res.stdout == ""
    assert UNREDUCIBLE[encoder].format("pool") in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_tokens_command_prints_reduced_counts() -> None:
    res = cli("harness.tokens", "encoder=clip_vit_l14_336", "preprocess=center_crop", "reduce=visionzip",
              "reduce.dominant=54", "reduce.contextual=10", "format=json")
    assert res.returncode == 0, res.stderr
    assert [r["visual_tokens"] for r in json.loads(res.stdout)] == [64, 64]
    res = cli("harness.tokens", "encoder=clip_vit_l14_336", "preprocess=llava_anyres", "reduce=visionzip",
              "format=json", "sizes=[1920x1080,336x336]")
    rows = json.loads(res.stdout)
    assert [r["visual_tokens"] for r in rows] == [64 * r["views"] for r in rows] == [64 * 5, 64 * 3]
    res = cli("harness.tokens", "encoder=clip_vit_l14_336", "preprocess=center_crop", "reduce=prumerge")
    assert res.returncode == 0 and "data-dependent (1..145)" in res.stdout


@pytest.mark.slow
def test_run_records_carry_the_reduction(tmp_path: Path) -> None:
    common = ["encoder=clip_vit_l14_336", "preprocess=center_crop", "encoder.size=tiny", "encoder.weights=random",
              "dataset.num_images=4", f"results_dir={tmp_path}", "progress=false"]
    for extra in (["reduce=visionzip"], ["reduce=prumerge"], []):
        res = cli("harness", *common, *extra, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    runs = {}
    for folder in (tmp_path / "runs" / "default").iterdir():
        rec = pd.read_parquet(folder / "records.parquet")
        runs[rec["reduce"].iloc[0] if "reduce" in rec else "none"] = rec
    vz, pm, none = runs["visionzip"], runs["prumerge"], runs["none"]
    images = vz[vz.kind == "image"]
    assert (images.visual_tokens == 64).all() and (images.reduce_ms > 0).all()
    assert (vz.reduce_params == '{"contextual": 10, "dominant": 54}').all() and (vz.rd_dominant == 54).all()
    assert "reduce_p50_ms" in vz[vz.kind == "run"].columns
    counts = pm[pm.kind == "image"].visual_tokens
    assert counts.between(1, 145).all()  # adaptive: recorded per image, within the bounds
    assert (pm.rd_adaptive == True).all()  # noqa: E712
    assert not any(c == "reduce" or c.startswith(("rd_", "reduce_")) for c in none.columns)
    assert (none[none.kind == "image"].visual_tokens == 576).all()
