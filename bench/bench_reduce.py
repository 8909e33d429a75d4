"""Token-reduction overhead as a fraction of the backbone's time, every method side by side.

One encoder per family with its native strategy encodes the same synthetic images once per
method, interleaved round by round, through `Encoder.encode` (what the runner calls). `encode`
times its stages apart: `backbone` (the forward pass), `reduce` (scores of the one layer a
method reads, recomputed from its input hidden state, plus the reduction) and `connector`.
Prints, per method, tokens per image, backbone and reduce ms per image (median over rounds) and
reduce / backbone. The goal (issue 14): reduce <= 5 % of backbone.

    python bench/bench_reduce.py                         # full-size CLIP-L/14-336, 4 images, CPU
    python bench/bench_reduce.py --encoders clip_vit_l14_336,internvit_300m --n 8 --rounds 3
    python bench/bench_reduce.py --device cuda --dtype bfloat16 --n 64
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import torch

from harness.data.synthetic import Synthetic
from harness.encoders import ENCODERS
from harness.preprocess import build_strategy
from harness.reduce import build_reducer
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
    times: dict[str, dict[str, list[float]]] = {lab: {"backbone": [], "reduce": [], "tokens": []}
                                                for lab, _ in reducers}
    with torch.inference_mode():
        encoder.encode(views[:1])  # warm-up
        for _ in range(rounds):
            for lab, reducer in reducers:  # interleaved: machine load hits every method alike
                encoder.use_reduction(reducer)
                backbone = reduce = 0.0
                tokens = 0
                for v in views:  # one image per call, as LLaVA runs PruMerge/VisionZip
                    outputs, stages = encoder.encode([v])
                    backbone += stages["backbone"]
                    reduce += stages.get("reduce", 0.0)
                    tokens += outputs[0].num_tokens
                times[lab]["backbone"].append(backbone * 1e3 / len(views))
                times[lab]["reduce"].append(reduce * 1e3 / len(views))
                times[lab]["tokens"].append(tokens / len(views))
    rows = []
    for lab, t in times.items():
        b, r = statistics.median(t["backbone"]), statistics.median(t["reduce"])
        rows.append({"encoder": encoder_name, "method": lab, "tokens/img": t["tokens"][-1],
                     "views/img": sum(v.pixel_values.shape[0] for v in views) / len(views),
                     "backbone ms/img": b, "reduce ms/img": r, "reduce/backbone": r / b})
    return rows


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
    print("| encoder | method | tokens/img | views/img | backbone ms/img | reduce ms/img | reduce / backbone |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.encoders.split(","):
        for row in bench(name, args.size, runtime, images, args.rounds, args.batch_views):
            print(f"| {row['encoder']} | {row['method']} | {row['tokens/img']:.1f} | {row['views/img']:.1f} | "
                  f"{row['backbone ms/img']:.1f} | {row['reduce ms/img']:.2f} | {100 * row['reduce/backbone']:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
