"""preprocess.device=cuda: workers decode and plan, the main process makes the views on the
device. Without a GPU the same path runs with the torch backend on CPU tensors (the very code
the GPU runs, device aside) and must give the records and embeddings of the usual path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.synthetic import Synthetic
from harness.encoders.clip_vit import ClipViT
from harness.pipeline.runner import Runner
from harness.preprocess import build_strategy
from harness.runtime import Runtime


def _run(strategy_backend: str, on_device: bool, num_workers: int = 0, bad_index: int | None = None):
    runtime = Runtime.resolve("cpu", "float32")
    torch.manual_seed(0)
    encoder = ClipViT(size="tiny", weights="random", runtime=runtime, batch_views=8)
    strategy = build_strategy("llava_anyres", tile_size=336, mean=list(ClipViT.mean), std=list(ClipViT.std),
                              backend=strategy_backend)
    dataset = Synthetic(num_images=4, seed=3, max_side=300)
    runner = Runner(dataset, strategy, encoder, {"run_id": "t"}, progress=False, num_workers=num_workers)
    runner.views_on_device = on_device
    if bad_index is not None:  # the device half fails for one image: an error row, the run goes on
        real, calls = strategy.views, []

        def views(pixels, layout):
            calls.append(layout)
            if len(calls) == bad_index + 1:
                raise RuntimeError("device kernel failed")
            return real(pixels, layout)

        strategy.views = views  # type: ignore[method-assign]
    return runner.run()


def test_views_made_in_the_main_process_equal_the_workers():
    usual = _run("numba", on_device=False)
    split = _run("torch", on_device=True)
    assert np.array_equal(usual.embeddings, split.embeddings)
    rows = [(r.image_id, r.values["visual_tokens"], r.status) for r in usual.records if r.kind == "image"]
    assert rows == [(r.image_id, r.values["visual_tokens"], r.status) for r in split.records
                    if r.kind == "image"]
    assert all(r.values["preprocess_ms"] > 0 for r in split.records if r.kind == "image")


def test_views_from_worker_processes():
    """Pixels travel from a worker process (shared memory) to the main process's views."""
    assert np.array_equal(_run("torch", on_device=True, num_workers=1).embeddings,
                          _run("numba", on_device=False).embeddings)


def test_compiled_kernels_in_worker_processes():
    """Workers run the serial kernels after the parent ran the parallel ones (fork-safe)."""
    assert np.array_equal(_run("numba", on_device=False, num_workers=2).embeddings,
                          _run("numba", on_device=False).embeddings)


def test_a_failure_on_the_device_is_an_error_row():
    result = _run("torch", on_device=True, bad_index=1)
    images = [r for r in result.records if r.kind == "image"]
    assert sorted(r.status for r in images) == ["error:preprocess", "ok", "ok", "ok"]
    assert ["device kernel failed" in r.message for r in images if r.status != "ok"] == [True]


def test_pixels_identical_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    rng = np.random.default_rng(0)
    for name in ("resize", "center_crop", "internvl_dynamic", "llava_anyres", "qwen_native", "llava_onevision"):
        cpu, gpu = build_strategy(name), build_strategy(name, device="cuda")
        for size in [(301, 177), (90, 260), (1920, 1080), (1, 1)]:
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            assert torch.equal(gpu.apply(image).pixel_values.cpu(), cpu.apply(image).pixel_values), (name, size)
