"""Preprocessing speed: each strategy against its reference on the same synthetic images.

For every strategy, the same images go through our `apply` (the default backend, `numba`:
Pillow's resize compiled for all cores; and backend `pil`: Pillow's own resize) and through
the reference (transformers' PIL processor, or the Phi-3 remote-code transcription),
interleaved image by image so that machine load affects all alike. Prints ms/image, the
speed-ups, the max |difference| of the pixel values (0 means bit-identical), and plan()
sizes per second.

A first table times the resample alone: every `Image.resize` call the strategies make, by
Pillow, by the compiled resampler (`resize_array`, from Pillow's memory without a copy) and by
the torch one (`resize`, the GPU path, here on the CPU), same inputs, outputs compared.

    python bench/bench_preprocess.py [--n 200] [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import numpy as np
import torch
from PIL import Image

from harness.data.synthetic import Synthetic
from harness.preprocess import build_strategy
from harness.preprocess._references import transformers_reference
from harness.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD
from harness.preprocess.pixels import rgbx
from harness.preprocess.resample import resize as torch_resize
from harness.preprocess.resample import resize_array

CONFIGS = [
    ("resize", {"tile_size": 448, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}, "GotOcr2ImageProcessorPil"),
    ("center_crop", {}, "CLIPImageProcessorPil"),
    ("internvl_dynamic", {"max_tiles": 12}, "GotOcr2ImageProcessorPil(crop_to_patches)"),
    ("internvl_dynamic", {"max_tiles": 6}, "GotOcr2ImageProcessorPil(crop_to_patches)"),
    ("phi3_hd", {"num_crops": 16}, "Phi-3-V remote code (transcribed)"),
    ("phi3_hd", {"num_crops": 4}, "Phi-3-V remote code (transcribed)"),
    ("llava_anyres", {}, "LlavaNextImageProcessorPil"),
]


class ResampleClock:
    """Accumulates the seconds spent inside PIL's `Image.resize` while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._real = Image.Image.resize

    def __enter__(self) -> ResampleClock:
        real, clock = self._real, self

        def timed(image: Image.Image, *args, **kwargs) -> Image.Image:
            t0 = time.perf_counter()
            try:
                return real(image, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - t0

        Image.Image.resize = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Image.Image.resize = self._real  # type: ignore[method-assign]


def time_strategies(images: list, configs: list) -> list[dict]:
    rows = []
    for name, params, ref_name in configs:
        strategy = build_strategy(name, **params)  # the default backend
        pil_strategy = build_strategy(name, backend="pil", **params)
        reference = transformers_reference(strategy)
        for image in images:  # warm-up: imports, caches, each compiled kernel's first call
            reference(image)
            strategy.apply(image)
            pil_strategy.apply(image)
        t_ours = t_ref = r_ref = t_pil = 0.0
        max_diff = max_diff_pil = 0.0
        for image in images:
            with ResampleClock() as clock_ref:
                t0 = time.perf_counter()
                ref = reference(image)
                t1 = time.perf_counter()
            ours = strategy.apply(image).pixel_values
            t2 = time.perf_counter()
            ours_pil = pil_strategy.apply(image).pixel_values
            t3 = time.perf_counter()
            t_ref += t1 - t0
            t_ours += t2 - t1
            t_pil += t3 - t2
            r_ref += clock_ref.seconds
            if ours.shape != ref.shape:
                raise AssertionError(f"{name} {params}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}")
            max_diff = max(max_diff, float((ours - ref).abs().max()))
            max_diff_pil = max(max_diff_pil, float((ours_pil - ref).abs().max()))
        n = len(images)
        label = name + "".join(f" {k}={v}" for k, v in params.items() if k not in ("mean", "std"))
        rows.append({
            "strategy": label, "reference": ref_name, "ours_ms": 1e3 * t_ours / n, "ref_ms": 1e3 * t_ref / n,
            "speedup": t_ref / t_ours, "max_abs_diff": max_diff, "ref_resample_ms": 1e3 * r_ref / n,
            "pil_ms": 1e3 * t_pil / n, "pil_speedup": t_ref / t_pil, "max_abs_diff_pil": max_diff_pil,
        })
    return rows


def resample_calls(images: list, configs: list) -> dict[str, list[tuple[Image.Image, tuple[int, int], int]]]:
    """Every `Image.resize` call each strategy (backend pil) makes on these images."""
    calls: dict[str, list] = {}
    real = Image.Image.resize
    for name, params, _ in configs:
        label = name + "".join(f" {k}={v}" for k, v in params.items() if k not in ("mean", "std"))
        found: list = []

        def record(image: Image.Image, size, resample=None, *args, found=found, **kwargs) -> Image.Image:
            found.append((image, tuple(size), resample))
            return real(image, size, resample, *args, **kwargs)

        Image.Image.resize = record  # type: ignore[method-assign]
        try:
            strategy = build_strategy(name, backend="pil", **params)
            for image in images:
                strategy.apply(image)
        finally:
            Image.Image.resize = real  # type: ignore[method-assign]
        calls[label] = found
    return calls


def time_resamples(calls: dict[str, list], with_torch: bool) -> list[dict]:
    """Pillow's resize against the compiled one (and the torch one) on the same calls,
    interleaved; outputs compared."""
    rows = []
    for label, found in calls.items():
        t_pil = t_numba = t_torch = 0.0
        identical = True
        for image, size, resample in found[:3]:  # warm-up: each compiled kernel's first call
            resize_array(rgbx(image), size, resample)
        for image, size, resample in found:
            t0 = time.perf_counter()
            expected = image.resize(size, resample)
            t1 = time.perf_counter()
            got = resize_array(rgbx(image), size, resample)
            t2 = time.perf_counter()
            t_pil += t1 - t0
            t_numba += t2 - t1
            expected = np.asarray(expected)
            identical &= bool(np.array_equal(got[..., :3], expected))
            if with_torch:
                pixels = torch.from_numpy(np.array(image))
                t3 = time.perf_counter()
                got_torch = torch_resize(pixels, size, resample)
                t_torch += time.perf_counter() - t3
                identical &= bool(np.array_equal(got_torch.numpy(), expected))
        n = max(len(found), 1)
        rows.append({"strategy": label, "calls": len(found), "pil_ms": 1e3 * t_pil / n,
                     "numba_ms": 1e3 * t_numba / n, "ratio": t_pil / max(t_numba, 1e-9),
                     "torch_ms": 1e3 * t_torch / n if with_torch else float("nan"), "identical": identical})
    return rows


def plan_rate(n_sizes: int) -> list[tuple[str, float]]:
    rng = random.Random(0)
    sizes = [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(n_sizes)]
    out = []
    for name, params, _ in CONFIGS:
        strategy = build_strategy(name, **params)
        plan = strategy.plan
        t0 = time.perf_counter()
        for w, h in sizes:
            plan(w, h)
        rate = n_sizes / (time.perf_counter() - t0)
        out.append((name + (f" {params}" if name in ("internvl_dynamic", "phi3_hd") else ""), rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of synthetic images (default 200)")
    parser.add_argument("--quick", action="store_true", help="24 images, 20,000 plan sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: all cores)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch resampler's column (slow on CPU)")
    args = parser.parse_args()
    if args.threads:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    n = 24 if args.quick else args.n
    data = Synthetic(num_images=n, seed=0, max_side=2000)
    images = [data[i].load() for i in range(n)]  # samples are lazy: decode once, outside the timing
    sizes = sorted({im.size for im in images})
    print(f"# preprocess bench: {n} synthetic images, {len(sizes)} sizes from {sizes[0]} to {sizes[-1]}; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    import numba

    print(f"# numba threads {numba.get_num_threads()} (the compiled resampler's cores)")
    print("\n## resample alone: every Image.resize call of each strategy, Pillow vs compiled (vs torch), ms/call")
    print(f"{'strategy':32s} {'calls':>6s} {'pil ms':>8s} {'numba ms':>9s} {'pil/numba':>9s} {'torch ms':>9s} "
          f"{'identical':>9s}")
    for row in time_resamples(resample_calls(images, CONFIGS), with_torch=not args.no_torch):
        print(f"{row['strategy']:32s} {row['calls']:6d} {row['pil_ms']:8.2f} {row['numba_ms']:9.2f} "
              f"{row['ratio']:8.2f}x {row['torch_ms']:9.2f} {row['identical']!s:>9s}", flush=True)
    print("\n## apply: ours (default backend numba; and backend pil) against the reference (ms/image)")
    header = (f"{'strategy':32s} {'reference':42s} {'ours ms':>8s} {'ref ms':>8s} {'ours x':>7s} "
              f"{'pil ms':>8s} {'pil x':>7s} {'ref resample ms':>15s} {'max|diff| ours/pil':>19s}")
    print(header, flush=True)
    for row in time_strategies(images, CONFIGS):
        diffs = f"{row['max_abs_diff']:.0e}/{row['max_abs_diff_pil']:.0e}"
        print(f"{row['strategy']:32s} {row['reference']:42s} {row['ours_ms']:8.2f} {row['ref_ms']:8.2f} "
              f"{row['speedup']:6.2f}x {row['pil_ms']:8.2f} {row['pil_speedup']:6.2f}x {row['ref_resample_ms']:15.2f} "
              f"{diffs:>19s}", flush=True)
    print()
    for label, rate in plan_rate(20_000 if args.quick else 200_000):
        print(f"plan() {label:60s} {rate:12,.0f} sizes/s")


if __name__ == "__main__":
    main()
