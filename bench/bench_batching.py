"""Encoding speed: crops of many images in one backbone call against one call per image.

Every encoder with its native strategy encodes the same synthetic images twice, in one run:
one `encode` call per image (what a per-image script does; its crops still share a call),
and, as the runner does, consecutive images grouped until they hold `batch_views` crops,
each group one `encode` call (crops of several images in one backbone call). Prints ms per
image for both, the ratio, and the max |difference| of the LLM-facing tokens (the batching
must not change them).

    python bench/bench_batching.py                # tiny on CPU, full size on CUDA (device=auto)
    python bench/bench_batching.py --size full --dtype bfloat16 --n 64 --batch-views 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import torch

from harness.data.synthetic import Synthetic
from harness.encoders import ENCODERS
from harness.preprocess import build_strategy
from harness.runtime import Runtime

NATIVE = {"clip_vit_l14_336": ("center_crop", {}), "phi3_vision": ("phi3_hd", {"num_crops": 16}),
          "internvit_300m": ("internvl_dynamic", {"max_tiles": 12})}


def bench(name: str, size: str, runtime: Runtime, images: list, batch_views: int) -> dict:
    cls = ENCODERS.get(name)
    encoder = cls(size=size, weights="random", runtime=runtime, batch_views=batch_views)
    strategy_name, params = NATIVE[name]
    strategy = build_strategy(strategy_name, tile_size=cls.tile_size, mean=cls.mean, std=cls.std, **params)
    views = [strategy.apply(im) for im in images]
    with torch.inference_mode():
        encoder.encode(views[:2])  # warm-up: kernels, allocator
        runtime.synchronize()
        t0 = time.perf_counter()
        single = [encoder.encode([v])[0][0] for v in views]
        runtime.synchronize()
        t1 = time.perf_counter()
        batched, group, n_views = [], [], 0
        for v in views:  # the runner's grouping (Runner._batches)
            group.append(v)
            n_views += v.pixel_values.shape[0]
            if n_views >= batch_views:
                batched += encoder.encode(group)[0]
                group, n_views = [], 0
        if group:
            batched += encoder.encode(group)[0]
        runtime.synchronize()
        t2 = time.perf_counter()
    diff = max(float((a.tokens - b.tokens).abs().max()) for a, b in zip(single, batched, strict=True))
    n = len(images)
    return {"encoder": name, "views": sum(v.pixel_values.shape[0] for v in views) / n,
            "single_ms": 1e3 * (t1 - t0) / n, "batched_ms": 1e3 * (t2 - t1) / n, "speedup": (t1 - t0) / (t2 - t1),
            "max_abs_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), help="default: full on CUDA, tiny on CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--n", type=int, default=32, help="synthetic images (default 32)")
    parser.add_argument("--batch-views", type=int, default=32)
    args = parser.parse_args()
    cuda = Runtime.resolve(args.device).is_cuda
    runtime = Runtime.resolve(args.device, args.dtype or ("bfloat16" if cuda else "float32"))
    size = args.size or ("full" if cuda else "tiny")
    data = Synthetic(num_images=args.n, seed=0, max_side=1500)
    images = [data[i].load() for i in range(args.n)]
    print(f"# batching bench: {args.n} synthetic images, encoders {size}, {runtime.device} {runtime.dtype}, "
          f"batch_views {args.batch_views}; torch threads {torch.get_num_threads()}", flush=True)
    print(f"{'encoder':18s} {'views/img':>9s} {'per-image ms/img':>17s} {'batched ms/img':>15s} {'speedup':>8s} "
          f"{'max|diff|':>10s}")
    for name in NATIVE:
        r = bench(name, size, runtime, images, args.batch_views)
        print(f"{r['encoder']:18s} {r['views']:9.1f} {r['single_ms']:17.2f} {r['batched_ms']:15.2f} "
              f"{r['speedup']:7.2f}x {r['max_abs_diff']:10.2e}", flush=True)


if __name__ == "__main__":
    main()
