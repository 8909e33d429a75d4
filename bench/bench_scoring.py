"""Benchmark scoring at dataset size: the harness's modules against the toolkits' own code
(the transcriptions in tests/references/), side by side on the same synthetic predictions.

Prints, per benchmark, the seconds each takes to parse and score and the figure each gets; the
figures must be identical (exit 1 otherwise). Sizes are the real evaluation sets': TextVQA val
5,000 questions, DocVQA val 5,349, ChartQA test 2,500, MMBench dev 1,164 questions x 4 rotations.

    python bench/bench_scoring.py
    python bench/bench_scoring.py --seed 3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's harness, not an installed one

import pandas as pd

from harness.benchmarks.chartqa import scoring as chartqa
from harness.benchmarks.docvqa import scoring as docvqa
from harness.benchmarks.mmbench import scoring as mmbench
from harness.benchmarks.textvqa import scoring as textvqa
from tests.references import chartqa_reference, docvqa_reference, mmbench_reference, textvqa_reference

WORDS = ["coca cola", "Nike", "the 2", "two", "stop", "yes", "1,000", "It's open.", "dr. who", "3."]
DOC_ANSWERS = ["1996", "ITC Limited", "$12.50", "March 3, 1995", "Dr. Smith", "1995", "itc"]
CHART_ANSWERS = ["20", "21", "19.5", "12%", "0.12", "Yes", "yes", "0", "Brazil", "1e3"]
OPTIONS = ["cat", "dog", "bird", "fish", "a dog"]
RESPONSES = ["A", "B", "C", "D", "The answer is B", "dog", "I think C", "(A) cat", "Cannot determine the answer"]


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def textvqa_pair(rng: random.Random) -> tuple[float, float, float, float]:
    rows = [([rng.choice(WORDS) for _ in range(10)], rng.choice(WORDS)) for _ in range(5000)]

    def harness() -> float:
        frame = pd.DataFrame({"question_id": range(len(rows)), "category": "val",
                              "answer": [json.dumps(a) for a, _ in rows],
                              "prediction": [textvqa.parse(r, {}) for _, r in rows]})
        return textvqa.score(frame)["accuracy"]

    def toolkit() -> float:
        per_question = [textvqa_reference.process_results_with_strip({"question_id": 0, "answers": list(a)}, r)
                        for a, r in rows]
        return 100 * sum(p["exact_match"] for p in per_question) / len(rows)

    return (*_timed(harness), *_timed(toolkit))


def docvqa_pair(rng: random.Random) -> tuple[float, float, float, float]:
    rows = [(rng.sample(DOC_ANSWERS, 2), rng.choice(DOC_ANSWERS) + rng.choice(["", " ", "\n"])) for _ in range(5349)]

    def harness() -> float:
        frame = pd.DataFrame({"question_id": range(len(rows)), "category": "val",
                              "answer": [json.dumps(a) for a, _ in rows],
                              "prediction": [docvqa.parse(r, {}) for _, r in rows]})
        return docvqa.score(frame)["anls"]

    def toolkit() -> float:
        return 100 * sum(docvqa_reference.score_one(a, r) for a, r in rows) / len(rows)

    return (*_timed(harness), *_timed(toolkit))


def chartqa_pair(rng: random.Random) -> tuple[float, float, float, float]:
    rows = [(rng.choice(CHART_ANSWERS), rng.choice(CHART_ANSWERS) + rng.choice(["", " "]),
             rng.choice(["human_test", "augmented_test"])) for _ in range(2500)]

    def harness() -> float:
        frame = pd.DataFrame({"question_id": range(len(rows)), "category": [k for _, _, k in rows],
                              "answer": [a for a, _, _ in rows],
                              "prediction": [chartqa.parse(r, {}) for _, r, _ in rows]})
        return chartqa.score(frame)["relaxed_overall"]

    def toolkit() -> float:
        per_question = [chartqa_reference.process_results_with_strip({"type": k, "answer": a}, r) for a, r, k in rows]
        return 100 * sum(p["relaxed_overall"] for p in per_question) / len(rows)

    return (*_timed(harness), *_timed(toolkit))


def mmbench_pair(rng: random.Random) -> tuple[float, float, float, float]:
    ours, theirs = [], []
    for index in range(1164):
        question = {"question": "q", "options": dict(zip("ABCD", rng.sample(OPTIONS, 4), strict=True)),
                    "answer": rng.choice("ABCD"), "index": index}
        for variant in mmbench.circular_variants(question):
            # mostly right, so that some questions survive all four rotations
            response = variant["answer"] if rng.random() < 0.85 else rng.choice(RESPONSES)
            category = ["coarse_perception", "logic_reasoning"][index % 2]
            ours.append({"question_id": index, "category": category, "answer": variant["answer"], "response": response,
                         "index": index, "circular_index": variant["circular_index"], "options": variant["options"]})
            theirs.append({"question": "q", "category": category, "answer": variant["answer"], "prediction": response,
                           "index": index + 1_000_000 * variant["circular_index"], **variant["options"]})

    def harness() -> float:
        frame = pd.DataFrame(ours)
        frame["prediction"] = [mmbench.parse(r, {"options": o}) for r, o in zip(frame["response"], frame["options"],
                                                                                  strict=True)]
        return mmbench.score(frame)["circular_accuracy"]

    def toolkit() -> float:
        hits = mmbench_reference.mcq_circular_eval_exact_matching(pd.DataFrame(theirs))
        return 100 * sum(hits.values()) / len(hits)

    return (*_timed(harness), *_timed(toolkit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print("| benchmark | harness s | toolkit s | harness figure | toolkit figure |\n|---|---:|---:|---:|---:|")
    same = True
    for name, pair in [("TextVQA", textvqa_pair), ("DocVQA", docvqa_pair), ("ChartQA", chartqa_pair),
                       ("MMBench", mmbench_pair)]:
        ours, our_time, theirs, their_time = pair(random.Random(args.seed))
        same &= abs(ours - theirs) < 1e-9
        print(f"| {name} | {our_time:.2f} | {their_time:.2f} | {ours:.4f} | {theirs:.4f} |")
    print("figures identical" if same else "FIGURES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
