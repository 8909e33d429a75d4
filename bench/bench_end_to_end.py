"""End to end on this machine: images/s of a whole run against the encoder alone.

A `Runner` over synthetic images (decode + preprocess + encode, as `python -m harness` runs
them) is timed by the wall clock, after one warm-up run; then the encoder alone is timed on
the same images already preprocessed, in batches of `batch_views` crops as the runner makes
them. The ratio run / encoder-only images/s says how much decode and preprocessing cost a
run; 1.0 means they are fully hidden behind the encoder. CLIP ViT-L/14-336 with random
weights, tiny and full size, center_crop (its native strategy).

    python bench/bench_end_to_end.py [--n 16] [--workers 0] [--backend auto] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import time

import torch

from harness.data.synthetic import Synthetic
from harness.encoders.clip_vit import ClipViT
from harness.preprocess import build_strategy
from harness.runner import Runner
from harness.runtime import Runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="synthetic images per run (default 16)")
    parser.add_argument("--workers", default="0", help="DataLoader workers: an int or auto (default 0)")
    parser.add_argument("--backend", default="auto", help="resample backend: auto, pil or torch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--sizes", default="tiny,full", help="encoder sizes (default tiny,full)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers == "auto" else int(args.workers)
    runtime = Runtime.resolve(args.device, "float32" if args.device == "cpu" else "bfloat16")
    print(f"# end to end: {args.n} synthetic images (max side 2000), center_crop, backend {args.backend}, "
          f"num_workers {args.workers}, {runtime.device}, torch threads {torch.get_num_threads()}")
    print(f"{'encoder':24s} {'run img/s':>10s} {'encoder img/s':>14s} {'run/encoder':>12s} "
          f"{'preprocess p50 ms':>18s} {'decode p50 ms':>14s}")
    for size in args.sizes.split(","):
        encoder = ClipViT(size=size, weights="random", runtime=runtime, batch_views=8)
        strategy = build_strategy("center_crop", mean=list(ClipViT.mean), std=list(ClipViT.std),
                                  backend=args.backend)
        dataset = Synthetic(num_images=args.n, seed=0, max_side=2000)
        runner = Runner(dataset, strategy, encoder, {"run_id": "bench"}, num_workers=workers, progress=False,
                        warmup_batches=1)
        runner.run()  # warm-up: weights paged in, kernels chosen
        t0 = time.perf_counter()
        run = runner.run().records[-1].values
        run_rate = args.n / (time.perf_counter() - t0)
        views = [strategy.apply(dataset[i].load()) for i in range(args.n)]
        batches, batch, n_views = [], [], 0
        for v in views:  # the runner's grouping: about batch_views crops per call
            batch.append(v)
            n_views += v.pixel_values.shape[0]
            if n_views >= encoder.batch_views:
                batches.append(batch)
                batch, n_views = [], 0
        batches += [batch] if batch else []
        t0 = time.perf_counter()
        for batch in batches:
            encoder.encode(batch)
        encoder_rate = args.n / (time.perf_counter() - t0)
        print(f"clip_vit_l14_336 {size:7s} {run_rate:10.2f} {encoder_rate:14.2f} {run_rate / encoder_rate:11.2f}x "
              f"{run['preprocess_p50_ms']:18.2f} {run['decode_p50_ms']:14.2f}", flush=True)


if __name__ == "__main__":
    main()
