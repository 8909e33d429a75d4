"""Latency, memory and out-of-memory handling of the runner, on CPU with a tiny CLIP."""

from __future__ import annotations

import pytest
import torch

from harness.data.synthetic import Synthetic
from harness.encoders.clip_vit import ClipViT
from harness.metrics import memory as memory_mod
from harness.metrics.memory import PeakMemory, is_out_of_memory
from harness.pipeline.runner import Runner
from harness.preprocess.resize import Resize
from harness.runtime import Runtime

N_IMAGES = 6


def _runner(batch_views: int = 4, warmup_batches: int = 1) -> Runner:
    runtime = Runtime.resolve("cpu", "float32")
    encoder = ClipViT(size="tiny", weights="random", runtime=runtime, batch_views=batch_views)
    strategy = Resize(tile_size=336, mean=list(ClipViT.mean), std=list(ClipViT.std))
    dataset = Synthetic(num_images=N_IMAGES, seed=0, max_side=128)
    return Runner(dataset, strategy, encoder, {"run_id": "test"}, warmup_batches=warmup_batches, progress=False)


def _fake_oom(runner: Runner, max_crops: int, poison: torch.Tensor | None = None) -> list[int]:
    """Make the backbone raise OOM when given more than `max_crops` crops (or the poison crop)."""
    real = runner.encoder.run_backbone
    calls: list[int] = []

    def backbone(pixels: torch.Tensor) -> torch.Tensor:
        calls.append(pixels.shape[0])
        if pixels.shape[0] > max_crops:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {pixels.shape[0]} crops")
        if poison is not None and any(torch.equal(p, poison) for p in pixels):
            raise torch.OutOfMemoryError("CUDA out of memory. this image alone")
        return real(pixels)

    runner.encoder.run_backbone = backbone  # type: ignore[method-assign]
    return calls


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_run_records_stages_warmup_and_memory():
    result = _runner(batch_views=4).run()
    images = [r for r in result.records if r.kind == "image"]
    run = result.records[-1].values
    assert len(images) == N_IMAGES and all(r.status == "ok" for r in images)
    assert [r.values["warmup"] for r in images] == [True] * 4 + [False] * 2
    assert [r.values["batch_index"] for r in images] == [0] * 4 + [1] * 2
    for r in images:
        for stage in ("decode", "preprocess", "h2d", "encode", "connector"):
            assert r.values[f"{stage}_ms"] >= 0
    assert run["n_warmup_images"] == 4 and run["timing_includes_warmup"] is False
    timed = sorted(r.values["encode_ms"] for r in images[4:])
    assert run["encode_p50_ms"] == pytest.approx(sum(timed) / 2)
    assert run["warmup_encode_mean_ms"] == pytest.approx(sum(r.values["encode_ms"] for r in images[:4]) / 4)
    for key in ("h2d_p50_ms", "encode_p95_ms", "encode_images_per_s", "encode_views_per_s", "views_per_s"):
        assert run[key] > 0
    assert run["oom_retries"] == 0 and run["peak_rss_approx"] is True and run["peak_rss_mb"] > 0
    assert "peak_allocated_mb" not in run and "batch_peak_allocated_mb" not in images[0].values
    assert result.embeddings.shape[0] == N_IMAGES
    assert result.embedding_labels == [r.values["label"] for r in images]


def test_tiny_run_flags_timing_includes_warmup():
    run = _runner(batch_views=16).run().records[-1].values
    assert run["n_warmup_images"] == N_IMAGES and run["timing_includes_warmup"] is True


def test_oom_batches_are_halved_and_recorded():
    runner = _runner(batch_views=4)
    reference = _runner(batch_views=4).run()
    calls = _fake_oom(runner, max_crops=1)
    result = runner.run()
    images = [r for r in result.records if r.kind == "image"]
    assert all(r.status == "ok" for r in images) and len(images) == N_IMAGES
    # batch of 4 -> 2 + 2 -> 1+1+1+1 (3 retries); batch of 2 -> 1 + 1 (1 retry)
    assert result.records[-1].values["oom_retries"] == 4
    assert calls == [4, 2, 1, 1, 2, 1, 1, 2, 1, 1]
    assert all(r.values["batch_images"] == 1 for r in images)
    assert result.embedding_ids == reference.embedding_ids
    torch.testing.assert_close(torch.from_numpy(result.embeddings), torch.from_numpy(reference.embeddings),
                               rtol=1e-4, atol=1e-5)


def test_image_that_alone_does_not_fit_becomes_error_row():
    runner = _runner(batch_views=4)
    poison = runner.strategy.apply(runner.dataset[2].load()).pixel_values[0]
    _fake_oom(runner, max_crops=4, poison=poison)
    result = runner.run()
    images = [r for r in result.records if r.kind == "image"]
    run = result.records[-1].values
    status = {r.image_id: r.status for r in images}
    bad = runner.dataset[2].id
    assert status.pop(bad) == "error:oom" and set(status.values()) == {"ok"}
    assert "out of memory" in next(r.message for r in images if r.image_id == bad)
    assert run["n_oom"] == 1 and run["n_errors"] == 1 and run["n_ok"] == N_IMAGES - 1
    assert run["oom_retries"] == 2  # 4 -> 2 + 2, then the poisoned pair -> 1 + 1
    assert bad not in result.embedding_ids and len(result.embedding_ids) == N_IMAGES - 1


def test_other_errors_are_not_swallowed():
    runner = _runner()

    def broken(pixels: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    runner.encoder.run_backbone = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        runner.run()


def test_cuda_peaks_are_per_batch_and_run_max(monkeypatch):
    """The CUDA bookkeeping without a GPU: counters faked, logic real."""
    state = {"alloc": 0, "reserved": 0}
    fake = {
        "synchronize": lambda device=None: None,
        "reset_peak_memory_stats": lambda device=None: state.update(alloc=0, reserved=0),
        "max_memory_allocated": lambda device=None: state["alloc"],
        "max_memory_reserved": lambda device=None: state["reserved"],
    }
    for name, fn in fake.items():
        monkeypatch.setattr(memory_mod.torch.cuda, name, fn)
    mib = 2**20
    with PeakMemory(torch.device("cuda")) as mem:
        batches = []
        for alloc in (300, 700, 200):
            mem.batch_start()
            state.update(alloc=alloc * mib, reserved=(alloc + 100) * mib)
            batches.append(mem.batch_end())
    assert [b["batch_peak_allocated_mb"] for b in batches] == [300, 700, 200]
    assert [b["batch_peak_reserved_mb"] for b in batches] == [400, 800, 300]
    assert mem.result["peak_allocated_mb"] == 700 and mem.result["peak_reserved_mb"] == 800


def test_latency_spread_percentiles_hand_worked():
    """numpy's linear interpolation on 1..11 ms: p5 1.5, p25 3.5, p50 6, p75 8.5, p95 10.5."""
    from harness.metrics.latency import summarize_ms

    got = summarize_ms([float(v) for v in range(11, 0, -1)] + [float("nan")], "encode")
    assert got == {"encode_p5_ms": 1.5, "encode_p25_ms": 3.5, "encode_p50_ms": 6.0, "encode_p75_ms": 8.5,
                   "encode_p95_ms": 10.5, "encode_mean_ms": 6.0}


def test_timing_repeats_encode_each_batch_n_times_and_keep_the_median(monkeypatch: pytest.MonkeyPatch):
    """With timing_repeats=3 each batch is encoded 3 times; the stage times recorded are the
    median of the three (here a fake clock: 5, 1, 3 ms -> 3 ms), the embeddings the first call's."""
    runner = _runner(batch_views=16, warmup_batches=0)
    runner.timing_repeats = 3
    real = runner.encoder.encode
    clock = iter([5.0, 1.0, 3.0] * 10)
    calls = []

    def encode(views):
        outputs, stage_s = real(views)
        calls.append(len(views))
        return outputs, {**stage_s, "backbone": next(clock) / 1e3}

    monkeypatch.setattr(runner.encoder, "encode", encode)
    result = runner.run()
    assert calls == [N_IMAGES] * 3
    images = [r.values for r in result.records if r.kind == "image"]
    assert sum(v["encode_ms"] for v in images) == pytest.approx(3.0)
    assert result.records[-1].values["timing_repeats"] == 3
    reference = _runner(batch_views=16, warmup_batches=0).run()
    assert abs(result.embeddings - reference.embeddings).max() < 1e-5


def test_machine_load_recorded_and_other_harness_processes_flag_the_run(monkeypatch: pytest.MonkeyPatch):
    from harness.metrics import latency

    run = _runner(batch_views=16).run().records[-1].values
    for key in ("load_start_load_1m", "load_end_load_1m", "load_start_other_harness", "load_end_other_harness"):
        assert key in run
    monkeypatch.setattr(latency, "other_harness_processes", lambda: 2)
    loaded = _runner(batch_views=16).run().records[-1].values
    assert loaded["load_start_other_harness"] == 2 and loaded["timed_under_load"] is True
    quiet = {"load_start_load_1m": 0.5, "load_start_cpu_count": 4, "load_start_other_harness": 0}
    busy = {"load_end_load_1m": 9.0, "load_end_cpu_count": 4, "load_end_other_harness": 0}
    assert not latency.under_load(quiet, {"load_end_load_1m": 1.0, "load_end_cpu_count": 4})
    assert latency.under_load(quiet, busy)  # 9 - 1 own > 0.5 * 4 cores
    assert latency.is_harness_command(["/x/python", "-m", "harness.sweep", "quickstart"])
    assert latency.is_harness_command(["/x/bin/harness-run", "encoder=clip_vit_l14_336"])
    assert not latency.is_harness_command(["/x/python", "-m", "pytest", "harness"])
