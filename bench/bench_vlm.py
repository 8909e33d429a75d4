"""Answering speed: questions/s of the harness answering an image's questions together (shared
prefix prefilled once + batched decoding, `Answerer.answer_many`) against transformers'
`generate` one question at a time and batched (left padding), on the same inputs.

Random weights (the `tiny` preset, a `small` one built here: 4 layers, width 512, and with
`--full` the family's full size), visual tokens of a real layout of a 640x480 image
(LLaVA-NeXT: llava_anyres; InternVL: internvl_dynamic, max 6 tiles) and two data shapes: MME
(2 questions per image) and POPE (6 per image). Every method makes exactly N new tokens per
question (EOS off on both sides). `generate` gets the embeddings the harness built, prepared
outside its timer (its inputs come free); the harness's time includes rendering, tokenizing and
embedding. Each image runs `--repeats` times per method, the methods in a rotating order, and
its median counts. Printed: questions/s of each method, ours / generate one at a time, ours / generate
batched, the prefill tokens saved by the shared prefix (of all prompt tokens), and whether every
method's tokens equal the harness's one-at-a-time answers. Goal: >= 1.8x questions/s against
generate one at a time on MME-shaped data.

    python bench/bench_vlm.py [--images 3] [--repeats 3] [--new-tokens 3] [--quick]
    python bench/bench_vlm.py --device cuda --dtype bfloat16 --full

`--overhead` prints the older table instead: the harness's one-at-a-time path against a bare
`generate` on one question (goal <= 5 %).
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
OBJECTS = ("dining table", "person", "car", "chair", "traffic light", "cup", "dog", "umbrella")
SHAPES = {  # data shape: questions of image k (MME: a yes and a no question; POPE: six objects)
    "MME": lambda k: [f"Is there a {o} in this image? Please answer yes or no." for o in OBJECTS[k % 4: k % 4 + 2]],
    "POPE": lambda k: [f"Is there a {o} in the image?" for o in (OBJECTS * 2)[k % 8: k % 8 + 6]],
}
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


def build(family: str, preset: str, new_tokens: int, runtime: Runtime):
    cls = VLMS.get(family)
    if preset == "small":
        cls = type(f"Small{cls.__name__}", (cls,), {"presets": {**cls.presets, "small": {
            **cls.presets["tiny"], **SMALL}}})
        cls.check_options = classmethod(lambda c, **kw: None)  # type: ignore[method-assign]
    answerer = cls(runtime=runtime, size=preset, max_new_tokens=new_tokens)
    answerer.eos_ids = set()  # exactly new_tokens steps on every side
    return answerer


def timed(runtime: Runtime, fn):
    runtime.synchronize()
    t0 = time.perf_counter()
    out = fn()
    runtime.synchronize()
    return out, time.perf_counter() - t0


def left_padded(embeds: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`[B, L, D]` embeddings and their attention mask, shorter prompts padded on the left."""
    width = max(e.shape[1] for e in embeds)
    out = embeds[0].new_zeros((len(embeds), width, embeds[0].shape[-1]))
    mask = torch.zeros((len(embeds), width), dtype=torch.long, device=embeds[0].device)
    for r, e in enumerate(embeds):
        out[r, width - e.shape[1]:] = e[0]
        mask[r, width - e.shape[1]:] = 1
    return out, mask


def throughput(answerer, shape: str, tokens: int, images: int, new_tokens: int, runtime: Runtime,
               repeats: int) -> dict:
    """Each method over the same images and questions (one warm-up image first), each image
    `repeats` times with the methods in a rotating order; an image's time per method is the
    median of its repeats (a shared machine slows single runs by 10 % and more)."""
    hidden = answerer.config.hidden_size
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    work = []
    for k in range(images + 1):
        torch.manual_seed(k)
        visual = (torch.randn(tokens, hidden) * 0.02).to(runtime.dtype)
        questions = SHAPES[shape](k)
        with torch.inference_mode():
            embeds = [answerer.embed(answerer.tokenize(q, tokens), visual) for q in questions]
        work.append((visual, questions, embeds))
    secs = {"ours": 0.0, "ours_alone": 0.0, "gen_alone": 0.0, "gen_batched": 0.0}
    same = {"ours": True, "gen_alone": True, "gen_batched": True}
    saved = prompt_total = n_questions = 0
    for k, (visual, questions, embeds) in enumerate(work):
        padded, mask = left_padded(embeds)
        methods = {
            "ours_alone": lambda v=visual, qs=questions: [answerer.answer(v, q).token_ids for q in qs],
            "ours": lambda v=visual, qs=questions: answerer.answer_many(v, qs),
            "gen_alone": lambda es=embeds: [answerer.lm.generate(
                inputs_embeds=e, attention_mask=torch.ones(e.shape[:2], dtype=torch.long, device=e.device),
                **gen)[0, -new_tokens:].tolist() for e in es],
            "gen_batched": lambda p=padded, m=mask: answerer.lm.generate(
                inputs_embeds=p, attention_mask=m, **gen)[:, -new_tokens:].tolist(),
        }
        names = list(methods)
        times: dict[str, list[float]] = {name: [] for name in names}
        outs: dict[str, object] = {}
        for r in range(repeats if k else 1):  # the warm-up image runs once
            for name in names[r % len(names):] + names[:r % len(names)]:
                with torch.inference_mode():
                    outs[name], t = timed(runtime, methods[name])
                times[name].append(t)
        want = outs["ours_alone"]
        same["ours"] &= [a.token_ids for a in outs["ours"]] == want
        same["gen_alone"] &= outs["gen_alone"] == want
        same["gen_batched"] &= outs["gen_batched"] == want
        if k == 0:
            continue  # warm-up
        for name in names:
            secs[name] += statistics.median(times[name])
        n_questions += len(questions)
        ours = outs["ours"]
        saved += sum(a.prefix_tokens_shared for a in ours) - ours[0].prefix_tokens_shared
        prompt_total += sum(a.prompt_tokens for a in ours)
    qps = {name: n_questions / s for name, s in secs.items()}
    return {"qps": qps, "saved": saved, "prompt_total": prompt_total, "same": same,
            "prompt": work[1][2][0].shape[1]}


def overhead(answerer, tokens: int, repeats: int, new_tokens: int, runtime: Runtime) -> dict:
    """The harness's one-at-a-time answer against a bare generate on one question."""
    torch.manual_seed(0)
    visual = torch.randn(tokens, answerer.config.hidden_size) * 0.02
    with torch.inference_mode():
        embeds = answerer.embed(answerer.tokenize(QUESTION, tokens), visual)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=runtime.device)
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    ours, bare = [], []
    for k in range(repeats + 1):  # the first round warms both up
        answer, t_ours = timed(runtime, lambda: answerer.answer(visual, QUESTION))
        with torch.inference_mode():
            out, t_bare = timed(runtime, lambda: answerer.lm.generate(inputs_embeds=embeds, attention_mask=mask, **gen))
        if k:
            ours.append(t_ours * 1e3)
            bare.append(t_bare * 1e3)
    o, b = statistics.median(ours), statistics.median(bare)
    return {"prompt": answer.prompt_tokens, "ours_ms": o, "bare_ms": b, "overhead": o / b - 1,
            "prefill_ms": answer.prefill_ms, "same_tokens": answer.token_ids == out[0, -new_tokens:].tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="timed images per data shape (after one warm-up)")
    parser.add_argument("--new-tokens", type=int, default=3, help="new tokens per question (MME: Yes/No + EOS)")
    parser.add_argument("--quick", action="store_true", help="tiny preset only")
    parser.add_argument("--full", action="store_true", help="the families' full-size LMs too (a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: steady on a shared machine, where spinning threads stall)")
    parser.add_argument("--overhead", action="store_true", help="the one-at-a-time overhead table instead")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each image per method, the median taken (--overhead: median of this many)")
    args = parser.parse_args()
    runtime = Runtime.resolve(args.device, args.dtype)
    torch.set_num_threads(args.threads)
    presets = ["tiny"] if args.quick else ["tiny", "small"]
    presets += ["full"] if args.full else []
    if args.overhead:
        print(f"device {runtime.device}, {args.new_tokens} new tokens per question, median of {args.repeats}")
        print("| family | LM | visual tokens | prompt tokens | harness ms/question | bare generate ms | overhead | "
              "prefill ms | same tokens |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for family, encoder, strategy, params in FAMILIES:
            tokens = visual_count(family, encoder, strategy, params)
            for preset in presets:
                r = overhead(build(family, preset, args.new_tokens, runtime), tokens, args.repeats,
                             args.new_tokens, runtime)
                print(f"| {family} | {preset} | {tokens} | {r['prompt']} | {r['ours_ms']:.1f} | {r['bare_ms']:.1f} | "
                      f"{100 * r['overhead']:+.1f} % | {r['prefill_ms']:.1f} | {r['same_tokens']} |")
        return 0
    print(f"device {runtime.device} {runtime.dtype_name} ({torch.get_num_threads()} CPU threads), "
          f"{args.new_tokens} new tokens per question, "
          f"{args.images} images per shape after a warm-up, median of {args.repeats} runs per image; questions/s")
    print("| family | LM | data | visual | prompt | ours | ours 1-at-a-time | generate 1-at-a-time | "
          "generate batched | ours / gen 1-at-a-time | ours / gen batched | prefill tokens saved | "
          "same tokens (ours, gen 1, gen b) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for family, encoder, strategy, params in FAMILIES:
        tokens = visual_count(family, encoder, strategy, params)
        for preset in presets:
            answerer = build(family, preset, args.new_tokens, runtime)
            for shape in SHAPES:
                r = throughput(answerer, shape, tokens, args.images, args.new_tokens, runtime, args.repeats)
                q, s = r["qps"], r["same"]
                print(f"| {family} | {preset} | {shape} | {tokens} | {r['prompt']} | {q['ours']:.2f} | "
                      f"{q['ours_alone']:.2f} | {q['gen_alone']:.2f} | {q['gen_batched']:.2f} | "
                      f"{q['ours'] / q['gen_alone']:.2f}x | {q['ours'] / q['gen_batched']:.2f}x | "
                      f"{r['saved']} ({100 * r['saved'] / r['prompt_total']:.0f} %) | "
                      f"{s['ours']}, {s['gen_alone']}, {s['gen_batched']} |", flush=True)
            del answerer
    return 0


if __name__ == "__main__":
    sys.exit(main())
