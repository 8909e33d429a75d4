"""Preprocessing speed: each strategy against its reference on the same synthetic images.

For every strategy, the same images go through our `apply` and through the reference
(transformers' PIL processor, or the Phi-3 remote-code transcription), interleaved image by
image so that machine load affects both alike. Prints ms/image for both, the speed-up, the
max |difference| of the pixel values (0 means bit-identical), and plan() sizes per second.

Bit-identical output means both sides run the same PIL resample (`Image.resize`), so the
bench also times those calls on each side and prints the speed-up of everything else
(`rest`): the part of preprocessing this package can make faster.

    python bench/bench_preprocess.py [--n 200] [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import torch
from PIL import Image

from harness.data.synthetic import Synthetic
from harness.preprocess import build_strategy
from harness.preprocess._references import transformers_reference
from harness.preprocess.normalization import IMAGENET_MEAN, IMAGENET_STD

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
        strategy = build_strategy(name, **params)
        reference = transformers_reference(strategy)
        reference(images[0])
        strategy.apply(images[0])  # warm-up (imports, caches)
        t_ours = t_ref = r_ours = r_ref = 0.0
        max_diff = 0.0
        for image in images:
            with ResampleClock() as clock_ref:
                t0 = time.perf_counter()
                ref = reference(image)
                t1 = time.perf_counter()
            with ResampleClock() as clock_ours:
                t2 = time.perf_counter()
                ours = strategy.apply(image).pixel_values
                t3 = time.perf_counter()
            t_ref += t1 - t0
            t_ours += t3 - t2
            r_ref += clock_ref.seconds
            r_ours += clock_ours.seconds
            if ours.shape != ref.shape:
                raise AssertionError(f"{name} {params}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}")
            max_diff = max(max_diff, float((ours - ref).abs().max()))
        n = len(images)
        label = name + "".join(f" {k}={v}" for k, v in params.items() if k not in ("mean", "std"))
        rows.append({
            "strategy": label, "reference": ref_name, "ours_ms": 1e3 * t_ours / n, "ref_ms": 1e3 * t_ref / n,
            "speedup": t_ref / t_ours, "max_abs_diff": max_diff, "ours_resample_ms": 1e3 * r_ours / n,
            "ref_resample_ms": 1e3 * r_ref / n, "rest_speedup": (t_ref - r_ref) / max(t_ours - r_ours, 1e-9),
        })
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
    args = parser.parse_args()
    n = 24 if args.quick else args.n
    data = Synthetic(num_images=n, seed=0, max_side=2000)
    images = [data[i].load() for i in range(n)]  # samples are lazy: decode once, outside the timing
    sizes = sorted({im.size for im in images})
    print(f"# preprocess bench: {n} synthetic images, {len(sizes)} sizes from {sizes[0]} to {sizes[-1]}; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    header = (f"{'strategy':32s} {'reference':42s} {'ours ms':>8s} {'ref ms':>8s} {'speedup':>8s} "
              f"{'resample ours/ref ms':>21s} {'rest speedup':>12s} {'max|diff|':>10s}")
    print(header, flush=True)
    for row in time_strategies(images, CONFIGS):
        resample = f"{row['ours_resample_ms']:.2f}/{row['ref_resample_ms']:.2f}"
        print(f"{row['strategy']:32s} {row['reference']:42s} {row['ours_ms']:8.2f} {row['ref_ms']:8.2f} "
              f"{row['speedup']:7.2f}x {resample:>21s} {row['rest_speedup']:11.2f}x {row['max_abs_diff']:10.2e}",
              flush=True)
    print()
    for label, rate in plan_rate(20_000 if args.quick else 200_000):
        print(f"plan() {label:60s} {rate:12,.0f} sizes/s")


if __name__ == "__main__":
    main()
