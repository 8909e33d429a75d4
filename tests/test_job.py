"""One source of truth: a job's identity and resume key come from the objects that run, and a
new encoder is one module plus one config file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import compose
from harness.pipeline.execute import run
from harness.pipeline.job import prepare_job

REPO = Path(__file__).resolve().parent.parent
TINY = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "dataset.num_images=2"]


@pytest.mark.parametrize(
    ("encoder", "explicit"),
    [
        ("internvit_300m", ["preprocess=internvl_dynamic"]),
        ("internvit_300m", ["preprocess=internvl_dynamic", "preprocess.max_tiles=12", "preprocess.min_tiles=1"]),
        ("phi3_vision", ["preprocess=phi3_hd", "preprocess.num_crops=16"]),
        ("clip_vit_l14_336", ["preprocess=center_crop"]),
    ],
)
def test_native_and_explicit_strategy_are_one_job(encoder: str, explicit: list[str]) -> None:
    native = prepare_job(compose([f"encoder={encoder}", "preprocess=native", *TINY]))
    spelled = prepare_job(compose([f"encoder={encoder}", *explicit, *TINY]))
    assert native.config_hash == spelled.config_hash
    a, b = native.identity("run"), spelled.identity("run")
    assert a == b
    assert a["strategy"] != "native" and a["pp_tile_size"] == native.encoder_cls.tile_size
    if encoder == "internvit_300m":
        assert (a["pp_min_tiles"], a["pp_max_tiles"], a["pp_thumbnail"], a["pp_exif_transpose"]) == (1, 12, True, False)


def test_a_different_parameter_is_a_different_job() -> None:
    six = prepare_job(compose(["encoder=internvit_300m", "preprocess=native", "+preprocess.max_tiles=6", *TINY]))
    twelve = prepare_job(compose(["encoder=internvit_300m", "preprocess=native", *TINY]))
    assert six.config_hash != twelve.config_hash
    assert six.identity("r")["pp_max_tiles"] == 6


def test_volatile_options_do_not_change_the_key_and_defaults_spelled_out_do_not_either() -> None:
    base = prepare_job(compose(["encoder=clip_vit_l14_336", *TINY]))
    volatile = prepare_job(compose(["encoder=clip_vit_l14_336", *TINY, "num_workers=2", "rerun=true",
                                    "max_error_fraction=0.5", "results_dir=elsewhere"]))
    spelled = prepare_job(compose(["encoder=clip_vit_l14_336", *TINY, "encoder.connector=flat", "device=cpu"]))
    assert base.config_hash == volatile.config_hash == spelled.config_hash
    assert prepare_job(compose(["encoder=clip_vit_l14_336", *TINY, "seed=1"])).config_hash != base.config_hash


def test_rerun_under_the_other_name_skips(tmp_path: Path) -> None:
    common = ["encoder=internvit_300m", *TINY, f"results_dir={tmp_path}", "study=samejob"]
    first = run([*common, "preprocess=native"])
    second = run([*common, "preprocess=internvl_dynamic", "preprocess.max_tiles=12"])
    assert first.status == "ok" and second.status == "skipped" and second.run_dir == first.run_dir


def test_failure_identity_uses_the_same_builder(tmp_path: Path) -> None:
    from harness.pipeline.execute import write_failure
    from harness.pipeline.store import RunStore

    config = compose(["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}", "preprocess=phi3_hd"])
    job = prepare_job(compose(["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}"]))
    failed = write_failure(config, ValueError("boom"))
    row = RunStore(failed.run_dir).records().iloc[0]
    ok_columns = set(job.identity("r"))
    assert {"encoder", "strategy", "strategy_params", "dataset", "dataset_params", "config_label"} <= set(row.index)
    assert {c for c in ok_columns if not c.startswith("pp_")} - {"weights_source"} <= set(row.index)
    assert row["status"] == "error:exception" and row["strategy"] == "phi3_hd"
    assert json.loads(row["strategy_params"])["pad_to_max_crops"] is True


NEW_ENCODER = '''
"""CLIP ViT-B/16 at 224 px: written by a test to prove that an encoder is one module."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.encoders import ENCODERS
from harness.encoders.base import Encoder
from harness.encoders.clip_vit import CLIP
from harness.encoders.weights import Format
from harness.preprocess.normalization import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

SHAPE = dict(image_size=224, patch_size=16)


@ENCODERS.register("clip_vit_b16_224")
class ClipB16(Encoder):
    tile_size = 224
    patch_size = 16
    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD
    native_strategy = "center_crop"
    hf_id = "openai/clip-vit-base-patch16"
    lm_dim: ClassVar[dict[str, int]] = {"full": 4096, "tiny": 48}
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ((CLIP, None),)
    config_class = CLIPVisionConfig
    model_class = CLIPVisionModel
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "full": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, **SHAPE),
        "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, **SHAPE),
    }
'''
NEW_CONFIG = """\
# CLIP ViT-B/16-224 (written by tests/test_job.py)
name: clip_vit_b16_224
size: full
weights: pretrained
connector: flat
out_dim: null
feature_layer: -2
pool: mean_patch
"""


@pytest.mark.slow
def test_a_new_encoder_is_one_module_and_one_config(tmp_path: Path) -> None:
    """Copy the package and configs, add exactly two files, and run the new encoder through
    `harness` (with a checkpoint written by transformers), and `harness.tokens`."""
    from transformers import CLIPConfig, CLIPModel

    root = tmp_path / "checkout"
    for folder in ("harness", "configs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "harness" / "encoders" / "clip_b16.py").write_text(NEW_ENCODER)
    (root / "configs" / "encoder" / "clip_vit_b16_224.yaml").write_text(NEW_CONFIG)
    ckpt = tmp_path / "ckpt"
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=224,
                  patch_size=16)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99)
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)).save_pretrained(ckpt)
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)

    tokens = harness("-m", "harness.tokens", "encoder=clip_vit_b16_224", "preprocess=native", "sizes=[640x480]",
                     "format=json")
    assert tokens.returncode == 0, tokens.stderr
    assert json.loads(tokens.stdout)[0]["visual_tokens"] == 14 * 14
    # It declares no query/key recipe: a reduction is refused before loading, not after.
    refused = harness("-m", "harness.tokens", "encoder=clip_vit_b16_224", "preprocess=native", "reduce=pool")
    assert refused.returncode == 2 and "declares no query/key recipe" in refused.stderr, refused.stderr
    ran = harness("-m", "harness", "encoder=clip_vit_b16_224", "encoder.size=tiny", f"encoder.weights={ckpt}",
                  "preprocess=native", "dataset.num_images=2", "progress=false", f"results_dir={tmp_path / 'out'}")
    assert ran.returncode == 0, ran.stderr
    import pandas as pd

    (records,) = (tmp_path / "out" / "runs" / "default").glob("*/records.parquet")
    rows = pd.read_parquet(records)
    images = rows[rows["kind"] == "image"]
    assert (images["status"] == "ok").all() and (images["visual_tokens"] == 196).all()
    assert set(rows["weights_source"].dropna()) == {str(ckpt)} and set(rows["strategy"].dropna()) == {"center_crop"}
