"""Answering overhead: the harness's per-question time against a bare transformers `generate`
loop on the same inputs.

For each family, random weights (the `tiny` preset, and a `small` one: 4 layers, width 512),
and the visual-token count of a real layout of a 640x480 image (LLaVA-NeXT: llava_anyres;
InternVL: internvl_dynamic, max 6 tiles; counts printed): the harness
answers a question (`Answerer.answer`: render the chat template, expand and tokenize, embed,
prefill, greedy decode with the KV cache, decode the text), and the bare loop calls
`lm.generate(inputs_embeds=..., max_new_tokens=N, do_sample=False)` on the embeddings the
harness built (prepared outside the timer: the bare loop gets its inputs for free). Both make
exactly N new tokens (EOS off for both), interleaved question by question; medians are
printed with the overhead = harness / bare - 1. Goal: <= 5 %.

    python bench/bench_vlm.py [--repeats 5] [--new-tokens 16] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import torch

from harness.encoders import ENCODERS
from harness.preprocess import build_strategy
from harness.runtime import Runtime
from harness.vlm import VLMS

QUESTION = "Is there a red square in this image? Please answer yes or no."
FAMILIES = [  # family, encoder, strategy, strategy params
    ("llava_next", "clip_vit_l14_336", "llava_anyres", {}),
    ("internvl", "internvit_300m", "internvl_dynamic", {"max_tiles": 6}),
]
SMALL = {"hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 2, "head_dim": 64}


def visual_count(family: str, encoder: str, strategy: str, params: dict) -> int:
    enc = ENCODERS.get(encoder)
    layout = build_strategy(strategy, tile_size=enc.tile_size, **params).plan(640, 480)
    return enc.count_tokens(layout, VLMS.get(family).connector)


def bench(family: str, preset: str, tokens: int, repeats: int, new_tokens: int, runtime: Runtime) -> dict:
    cls = VLMS.get(family)
    if preset == "small":
        cls = type(f"Small{cls.__name__}", (cls,), {"presets": {**cls.presets, "small": {
            **cls.presets["tiny"], **SMALL}}})
        cls.check_options = classmethod(lambda c, **kw: None)  # type: ignore[method-assign]
    answerer = cls(runtime=runtime, size=preset, max_new_tokens=new_tokens)
    answerer.eos_ids = set()  # exactly new_tokens steps on both sides
    hidden = answerer.config.hidden_size
    torch.manual_seed(0)
    visual = torch.randn(tokens, hidden) * 0.02
    prompt = answerer.tokenize(QUESTION, tokens)
    with torch.inference_mode():
        embeds = answerer.embed(prompt, visual)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=runtime.device)
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    ours, bare = [], []
    for k in range(repeats + 1):  # the first round warms both up
        runtime.synchronize()
        t0 = time.perf_counter()
        answer = answerer.answer(visual, QUESTION)
        runtime.synchronize()
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = answerer.lm.generate(inputs_embeds=embeds, attention_mask=mask, **gen)
        runtime.synchronize()
        t2 = time.perf_counter()
        if k:
            ours.append((t1 - t0) * 1e3)
            bare.append((t2 - t1) * 1e3)
    same = answer.token_ids == out[0, -new_tokens:].tolist()
    o, b = statistics.median(ours), statistics.median(bare)
    return {"family": family, "preset": preset, "visual": tokens, "prompt": answer.prompt_tokens, "ours_ms": o,
            "bare_ms": b, "overhead": o / b - 1, "prefill_ms": answer.prefill_ms, "same_tokens": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="tiny preset only, 3 repeats")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    runtime = Runtime.resolve(args.device, "float32")
    presets = ["tiny"] if args.quick else ["tiny", "small"]
    repeats = 3 if args.quick else args.repeats
    print(f"device {runtime.device}, {args.new_tokens} new tokens per question, median of {repeats}")
    print("| family | LM | visual tokens | prompt tokens | harness ms/question | bare generate ms | overhead | "
          "prefill ms | same tokens |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for family, encoder, strategy, params in FAMILIES:
        tokens = visual_count(family, encoder, strategy, params)
        for preset in presets:
            r = bench(family, preset, tokens, repeats, args.new_tokens, runtime)
            print(f"| {r['family']} | {r['preset']} | {r['visual']} | {r['prompt']} | {r['ours_ms']:.1f} | "
                  f"{r['bare_ms']:.1f} | {100 * r['overhead']:+.1f} % | {r['prefill_ms']:.1f} | {r['same_tokens']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
