"""Token-reduction overhead as a fraction of the backbone's time, every method side by side.

One encoder with its native strategy runs each synthetic image's backbone forward once
(hidden states kept, as `Encoder.encode` does with a reduction) and then, on those same states,
every method in turn, side by side: scores of the one layer the method reads (recomputed from
its input hidden state), the reduction and the connector's projection (`none`: the plain
connector, for reference). Prints per method tokens per image, the median backbone and
reduce+connect ms per image, and their ratio. The goal (issue 14): reduction <= 5 % of backbone.

    python bench/bench_reduce.py                         # full-size CLIP-L/14-336, 4 images, CPU
    python bench/bench_reduce.py --encoders clip_vit_l14_336,internvit_300m --n 8 --rounds 3
    python bench/bench_reduce.py --device cuda --dtype bfloat16 --n 64
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import torch

from harness.data.synthetic import Synthetic
from harness.encoders import ENCODERS
from harness.preprocess import build_strategy
from harness.reduce import build_reducer
from harness.reduce.scores import compute_scores
from harness.runtime import Runtime

NATIVE = {"clip_vit_l14_336": ("center_crop", {}), "internvit_300m": ("internvl_dynamic", {"max_tiles": 6})}
METHODS = [
    ("none", {}), ("cls_topk", {"keep": 64}), ("uniform", {"keep": 64}), ("pool", {"stride": 3}),
    ("visionzip", {"dominant": 54, "contextual": 10}), ("prumerge", {"adaptive": False}),
    ("prumerge", {"adaptive": True}), ("prumerge", {"variant": "prumerge_plus", "adaptive": True}),
]


def label(name: str, params: dict) -> str:
    return name + (" " + " ".join(f"{k}={v}" for k, v in params.items()) if params else "")


def bench(encoder_name: str, size: str, runtime: Runtime, images: list, rounds: int, batch_views: int) -> list[dict]:
    cls = ENCODERS.get(encoder_name)
    encoder = cls(size=size, weights="random", runtime=runtime, batch_views=batch_views)
    strategy_name, params = NATIVE[encoder_name]
    strategy = build_strategy(strategy_name, tile_size=cls.tile_size, mean=cls.mean, std=cls.std, **params)
    views = [strategy.apply(im) for im in images]
    reducers = [(label(n, p), build_reducer(n, **p)) for n, p in METHODS]
    backbone_ms: list[float] = []
    reduce_ms: dict[str, list[float]] = {lab: [] for lab, _ in reducers}
    tokens: dict[str, int] = {}
    with torch.inference_mode():
        encoder.encode(views[:1])  # warm-up
        for _ in range(rounds):
            for v in views:  # one image per call, as LLaVA runs PruMerge/VisionZip
                pixels = v.pixel_values.to(runtime.device, runtime.dtype)
                t0 = time.perf_counter()
                states = encoder.hidden_states(pixels)
                runtime.synchronize()
                backbone_ms.append((time.perf_counter() - t0) * 1e3)
                feats = states[encoder.feature_layer]
                for lab, reducer in reducers:  # the same hidden states for every method, side by side
                    t0 = time.perf_counter()
                    if reducer.name == "none":
                        out = encoder.connector(feats[:, 1:], v.layout)
                    else:
                        scores = compute_scores(encoder.qk_recipe, encoder.model.backbone, states,
                                                encoder.feature_layer, reducer.needs)
                        x = encoder.connector.arrange_reduced(feats, scores, v.layout)
                        out = encoder.connector.project_reduced(torch.cat(reducer.apply(x)))
                    runtime.synchronize()
                    reduce_ms[lab].append((time.perf_counter() - t0) * 1e3)
                    tokens[lab] = tokens.get(lab, 0) + out.shape[0]
    b = statistics.median(backbone_ms)
    n_views = sum(v.pixel_values.shape[0] for v in views) / len(views)
    return [{"encoder": encoder_name, "method": lab, "tokens/img": tokens[lab] / (rounds * len(views)),
             "views/img": n_views, "backbone ms/img": b, "reduce ms/img": statistics.median(ms),
             "reduce/backbone": statistics.median(ms) / b} for lab, ms in reduce_ms.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="clip_vit_l14_336")
    parser.add_argument("--size", default="full", choices=("full", "tiny"))
    parser.add_argument("--n", type=int, default=4, help="synthetic images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-views", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = Runtime.resolve(args.device, args.dtype)
    data = Synthetic(num_images=args.n, seed=0, max_side=1500)
    images = [data[i].load() for i in range(args.n)]
    print(f"device={runtime.device} dtype={args.dtype} size={args.size} images={args.n} rounds={args.rounds} "
          f"threads={torch.get_num_threads()}")
    print("| encoder | method | tokens/img | views/img | backbone ms/img | reduce+connect ms/img | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.encoders.split(","):
        for row in bench(name, args.size, runtime, images, args.rounds, args.batch_views):
            print(f"| {row['encoder']} | {row['method']} | {row['tokens/img']:.1f} | {row['views/img']:.1f} | "
                  f"{row['backbone ms/img']:.1f} | {row['reduce ms/img']:.2f} | {100 * row['reduce/backbone']:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
