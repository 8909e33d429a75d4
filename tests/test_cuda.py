"""The CUDA paths on a real GPU (skipped without one, so CI on CPU skips them): runs in
bfloat16 and float32 through `harness.pipeline.execute.run`, device memory peaks per run and per batch, CPU and
CUDA agreeing, and real out-of-memory errors (a per-process memory cap) halving batches or
turning an image that alone does not fit into an error row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.pipeline.execute import run
from harness.pipeline.store import RunStore
from harness.runtime import Runtime
from harness.vlm import VLMS
from harness.vlm.base import Answer
from tests.helpers.vlm import TOGETHER as QUESTIONS
from tests.helpers.vlm import grid_layout, lively, same_answers, visual_for

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(tmp_path: Path, *overrides: str) -> tuple[pd.DataFrame, RunStore]:
    base = ["encoder.size=tiny", "encoder.weights=random", "progress=false", f"results_dir={tmp_path}",
            "dataset.num_images=8", "num_workers=0"]
    run_dir = run([*base, *overrides]).run_dir
    store = RunStore(run_dir)
    return store.records(), store


@pytest.mark.parametrize("encoder", ["clip_vit_l14_336", "phi3_vision", "internvit_300m"])
def test_bf16_run_on_cuda_records_device_memory(tmp_path: Path, encoder: str) -> None:
    rec, _ = _run(tmp_path, f"encoder={encoder}", "preprocess=native", "device=auto", "dtype=bfloat16")
    images, run = rec[rec["kind"] == "image"], rec[rec["kind"] == "run"].iloc[0]
    assert (images["status"] == "ok").all() and len(images) == 8
    assert set(rec["device"].dropna()) == {"cuda"} and set(rec["dtype"].dropna()) == {"bfloat16"}
    assert run["peak_allocated_mb"] > 0 and run["peak_reserved_mb"] >= run["peak_allocated_mb"]
    assert (images["batch_peak_allocated_mb"] > 0).all()
    assert run["peak_allocated_mb"] == pytest.approx(images["batch_peak_allocated_mb"].max(), rel=1e-6)
    assert run["encode_p50_ms"] > 0 and run["weights_mb"] > 0


def test_cuda_float32_matches_cpu(tmp_path: Path) -> None:
    """Same seed, same random weights: pooled embeddings on CUDA (fp32, TF32 off) equal CPU's."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _, cpu = _run(tmp_path / "cpu", "device=cpu", "dtype=float32")
    _, gpu = _run(tmp_path / "gpu", "device=cuda", "dtype=float32")
    (ids_c, emb_c), (ids_g, emb_g) = cpu.embeddings(), gpu.embeddings()
    assert list(ids_c) == list(ids_g)
    np.testing.assert_allclose(emb_g, emb_c, rtol=1e-3, atol=1e-4)


@pytest.fixture
def memory_cap():
    """Caps this process's CUDA memory at `mb` MiB (a small GPU), undone afterwards."""
    total = torch.cuda.get_device_properties(0).total_memory

    def cap(mb: float) -> None:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(mb * 2**20 / total)

    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_real_oom_halves_the_batch_and_loses_nothing(tmp_path: Path, memory_cap) -> None:
    """64 single-view images in one call of eager attention need ~1 GiB; under a 160 MiB cap the
    runner halves until batches fit, and every image is still measured."""
    args = ("device=cuda", "dtype=float32", "attn=eager", "preprocess=resize", "dataset.num_images=64",
            "batch_views=64")
    _, free = _run(tmp_path / "free", *args)
    memory_cap(160)
    rec, capped = _run(tmp_path / "capped", *args)
    images, run = rec[rec["kind"] == "image"], rec[rec["kind"] == "run"].iloc[0]
    assert (images["status"] == "ok").all() and len(images) == 64
    assert run["oom_retries"] > 0 and images["batch_images"].max() < 64
    assert run["peak_reserved_mb"] <= 160 + 1e-6
    np.testing.assert_allclose(capped.embeddings()[1], free.embeddings()[1], rtol=1e-4, atol=1e-5)


def test_image_that_alone_does_not_fit_is_an_error_row(tmp_path: Path, memory_cap) -> None:
    memory_cap(6)  # the tiny model fits; one 336 view's eager attention (~16 MiB) does not
    rec, _ = _run(tmp_path, "device=cuda", "dtype=float32", "attn=eager", "preprocess=resize",
                  "dataset.num_images=3", "max_error_fraction=1.0")
    images, run = rec[rec["kind"] == "image"], rec[rec["kind"] == "run"].iloc[0]
    assert len(images) == 3 and (images["status"] == "error:oom").all()
    assert run["n_oom"] == 3 and "out of memory" in images["message"].iloc[0].lower()


@pytest.mark.parametrize("family", ["llava_next", "internvl", "qwen2_5_vl"])
def test_answering_together_on_cuda_equals_one_at_a_time(family: str) -> None:
    """The answering engine on the GPU: its own additive masks, the lead's cache joined to the
    others' and batched decoding give every question the one-at-a-time tokens in float32 (TF32
    off); in bfloat16 every question is answered (a near tie may flip there: docs/vlm_speed.md §5)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = Runtime.resolve("cuda", "float32")
    answerer = lively(VLMS.get(family)(runtime=gpu, max_new_tokens=8))
    visual, view = visual_for(answerer).to(gpu.device), grid_layout(5, 8)  # 40 tokens
    want = [answerer.answer(visual, q, layout=view) for q in QUESTIONS]
    for batch, share in ((8, True), (2, True), (8, False)):
        answerer.batch_questions, answerer.share_prefix = batch, share
        same_answers(answerer.answer_many(visual, list(QUESTIONS), layout=view), want)
    half = lively(VLMS.get(family)(runtime=Runtime.resolve("cuda", "bfloat16"), max_new_tokens=8))
    got = half.answer_many(visual.to(torch.bfloat16), list(QUESTIONS), layout=view)
    assert all(isinstance(a, Answer) and a.new_tokens >= 1 for a in got)
