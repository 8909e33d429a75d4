"""A new reduction method is one module plus one config: copy the package and configs, add exactly
those two files, and the method is counted by `harness.tokens`, checked before loading, and run
by `harness` with its identity in the records (as tests/test_job.py does for an encoder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent

NEW_METHOD = '''
"""`reduce=stride reduce.step=s`: every s-th patch of the row-major grid (written by a test to
prove that a reduction method is one module)."""

from __future__ import annotations

import torch

from harness.reduce import REDUCERS
from harness.bounds import at_least
from harness.reduce.base import Reducer, ViewFeatures


@REDUCERS.register("stride")
class Stride(Reducer):
    def __init__(self, *, step: int = 4) -> None:
        self.step = at_least("reduce.step", step, 1)

    def params(self) -> dict[str, int]:
        return {"step": self.step}

    def count(self, grid: tuple[int, int], has_cls: bool) -> int:
        return -(-grid[0] * grid[1] // self.step)

    def apply(self, x: ViewFeatures) -> list[torch.Tensor]:
        return list(x.patches[:, :: self.step].unbind(0))
'''
NEW_CONFIG = """\
# Every `step`-th patch (written by tests/test_reduce_recipe.py). Parameters: reduce.step (4).
name: stride
"""


@pytest.mark.slow
def test_a_new_reduction_method_is_one_module_and_one_config(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    for folder in ("harness", "configs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "harness" / "reduce" / "stride.py").write_text(NEW_METHOD)
    (root / "configs" / "reduce" / "stride.yaml").write_text(NEW_CONFIG)
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)

    common = ["encoder=clip_vit_l14_336", "preprocess=llava_anyres", "reduce=stride"]
    tokens = harness("-m", "harness.tokens", *common, "sizes=[1920x1080]", "format=json")
    assert tokens.returncode == 0, tokens.stderr
    (row,) = json.loads(tokens.stdout)
    assert row["visual_tokens"] == row["views"] * 576 // 4  # ceil(24 * 24 / 4) per content view
    five = harness("-m", "harness.tokens", *common, "reduce.step=5", "sizes=[1920x1080]", "format=json")
    assert json.loads(five.stdout)[0]["visual_tokens"] == row["views"] * 116  # ceil(576 / 5)
    # its parameters are config keys (read from the class), checked before loading, in one line
    bad = harness("-m", "harness.tokens", *common, "reduce.step=0")
    assert bad.returncode == 2 and "reduce.step must be an integer >= 1" in bad.stderr
    unknown = harness("-m", "harness.tokens", *common, "reduce.keep=3")
    assert unknown.returncode == 2 and "valid keys: name, step" in unknown.stderr, unknown.stderr
    # the declarations of encoders and connectors apply to it like to any method
    refused = harness("-m", "harness.tokens", "encoder=siglip_so400m", "reduce=stride")
    assert refused.returncode == 2 and "cannot be reduced" in refused.stderr

    ran = harness("-m", "harness", "encoder=clip_vit_l14_336", "preprocess=center_crop", "reduce=stride",
                  "encoder.size=tiny", "encoder.weights=random", "dataset.num_images=2", "progress=false",
                  f"results_dir={tmp_path / 'out'}")
    assert ran.returncode == 0, ran.stderr
    (records,) = (tmp_path / "out" / "runs" / "default").glob("*/records.parquet")
    rows = pd.read_parquet(records)
    images = rows[rows["kind"] == "image"]
    assert (images["status"] == "ok").all() and (images["visual_tokens"] == 144).all()
    assert set(rows["reduce"].dropna()) == {"stride"} and set(rows["rd_step"].dropna()) == {4}
