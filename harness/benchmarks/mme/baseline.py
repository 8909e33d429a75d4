"""`python -m harness.benchmarks.mme.baseline [overrides]` (`harness-mme-baseline`, `make mme-baseline`):
CLIP's encoder-only MME baseline, scored with MME's official rules.

An encoder alone cannot answer questions; CLIP's text tower can score them. Each question q
of an image gets s(q) = cosine(image embedding, text embedding of q without MME's answer
suffix); the answer is `Yes` iff s(q) > tau, with tau chosen per subtask on a held-out half of
the images (by image, seeded), which are then left out of the score, so no threshold ever
sees the image it answers. That gives a legitimate MME score (`harness.benchmarks.mme.scoring.score`).
Choosing the better question of each pair exploits MME's one-Yes-one-No construction: it is
written only as `pairwise_accuracy`, never as an MME score.

Writes one run folder `results/runs/<study>/<run id>/` (default study `mme_baseline`) with a
`kind=question` row per question (similarity, fit/scored split, prediction), `kind=metric`
rows (per subtask `mme_score`, `mme_acc`, `mme_acc_plus`, `mme_threshold`,
`pairwise_accuracy`; totals `mme_perception`, `mme_cognition`), error rows for images that
could not be read, and a `kind=run` summary; `harness.report` turns them into
`<study>_mme.*` (the paper layout's scores) and the `mme_subtasks` figure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from harness.benchmarks.mme.clip_similarity import mme_similarities
from harness.benchmarks.mme.scoring import pairwise_accuracy, score, threshold_predictions
from harness.benchmarks.mme.subtasks import SUBTASKS
from harness.command import guarded, wants_help
from harness.config import ConfigError, compose
from harness.folders import check_writable
from harness.pipeline.identity import new_run_id
from harness.pipeline.job import prepare_job
from harness.pipeline.store import RunStore
from harness.types import Record

ENCODER = "clip_vit_l14_336"
DEFAULTS = {"study": "mme_baseline", "dataset": "mme", "preprocess": "center_crop"}
FIT_FRACTION = 0.5


def load_clip(source: str, device: torch.device) -> tuple[Any, Any]:
    """`transformers.CLIPModel` (both towers, safetensors only) and its tokenizer from a hub id
    (through the local cache) or a folder."""
    from transformers import AutoTokenizer, CLIPModel

    try:
        model = CLIPModel.from_pretrained(source, use_safetensors=True).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)  # never a stdin prompt
    except OSError as exc:
        raise ConfigError(
            f"cannot load CLIPModel + tokenizer from {source!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            f"with no cache and no network, pass encoder.weights=<folder with config.json, model.safetensors and "
            f"the tokenizer files>"
        ) from exc
    return model, tokenizer


def _check(config: dict[str, Any]) -> None:
    if config["encoder"]["name"] != ENCODER:
        raise ConfigError(f"the MME baseline needs CLIP's text tower: encoder={ENCODER}; got "
                          f"{config['encoder']['name']!r}")
    if config["encoder"]["weights"] == "random":
        raise ConfigError("the MME baseline needs trained weights (a random text tower answers at chance): "
                          "encoder.weights=pretrained, a hub id or a folder")
    if config["dataset"]["name"] != "mme":
        raise ConfigError(f"the MME baseline scores MME's subtasks: dataset=mme; got {config['dataset']['name']!r}")


def run(overrides: Sequence[str]) -> Path:
    """Score every image of the dataset, write the run folder, return it."""
    config = compose(overrides, DEFAULTS)
    _check(config)
    job = prepare_job(config)
    probe = job.strategy.plan(2 * job.strategy.tile_size, job.strategy.tile_size)
    if probe.executed_views != 1:
        raise ConfigError(f"CLIP's image embedding takes one view; preprocess={job.strategy.name} makes "
                          f"{probe.executed_views}: use center_crop (CLIP's own) or resize")
    enc = job.config["encoder"]
    source = job.encoder_cls.hf_id if enc["weights"] == "pretrained" else enc["weights"]
    check_writable(job.study_dir)  # before the model loads, as every run
    model, tokenizer = load_clip(str(source), job.runtime.device)

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        return tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")

    run_id = new_run_id(job.config_hash)  # the same key as runs: volatile keys out
    identity = job.identity(run_id, {"encoder": f"{ENCODER}+text", "encoder_size": enc["size"],
                                     "weights": enc["weights"], "weights_source": str(source)})
    identity.update(dtype="float32", config_label=f"clip_text_baseline/{job.strategy.name}")  # CLIPModel runs fp32
    records: list[Record] = []
    frames: list[pd.DataFrame] = []
    pixels: dict[str, torch.Tensor] = {}
    rows: list[dict[str, Any]] = []
    batch = max(1, int(job.config["batch_views"]))
    t0 = time.perf_counter()

    def flush() -> None:
        if pixels:
            frames.append(mme_similarities(model, tokenize, pixels, pd.DataFrame(rows)))
            pixels.clear()
            rows.clear()

    bar = tqdm(range(len(job.dataset)), desc="clip MME baseline", unit="img", disable=not job.config["progress"])
    for i in bar:
        sample = job.dataset[i]
        try:
            if sample.category not in SUBTASKS or len(sample.questions) != 2:
                raise ValueError(f"category {sample.category!r} with {len(sample.questions)} questions is not "
                                 f"an MME image")
            views = job.strategy.apply(sample.load())
        except Exception as exc:  # noqa: BLE001 - one bad image becomes an error row, the run goes on
            records.append(Record("image", identity, image_id=sample.id, status="error:input",
                                  message=f"{type(exc).__name__}: {exc}", values={"category": sample.category}))
            continue
        pixels[sample.id] = views.pixel_values[0]
        rows += [{"question_id": q.id, "category": sample.category, "question": q.text, "answer": q.answer}
                 for q in sample.questions]
        if len(pixels) >= batch:
            flush()
    flush()
    if not frames:
        raise ConfigError("no image could be scored; see the error rows")
    frame = pd.concat(frames, ignore_index=True)
    try:
        predictions, thresholds = threshold_predictions(frame, fit_fraction=FIT_FRACTION, seed=job.config["seed"])
    except ValueError as exc:  # too few images of a subtask to hold some out: say so in one line
        raise ConfigError(str(exc)) from exc
    result = score(predictions)
    pairwise = pairwise_accuracy(frame)
    seconds = time.perf_counter() - t0

    scored = dict(zip(zip(predictions["question_id"], predictions["question"], strict=True),
                      predictions["prediction"], strict=True))
    for r in frame.itertuples(index=False):
        prediction = scored.get((r.question_id, r.question))
        records.append(Record("question", identity, image_id=r.question_id, values={
            "category": r.category, "question": r.question, "answer": r.answer, "similarity": float(r.similarity),
            "split": "scored" if prediction is not None else "fit", "prediction": prediction}))

    def metric(name: str, value: float, category: str | None = None, **extra: Any) -> Record:
        return Record("metric", identity, values={"metric": name, "value": float(value), "category": category,
                                                  **extra})

    for name, sub in result["subtasks"].items():
        records += [metric("mme_score", sub["score"], name, n_images=sub["n_images"]),
                    metric("mme_acc", sub["acc"], name), metric("mme_acc_plus", sub["acc_plus"], name),
                    metric("mme_threshold", thresholds[name], name),
                    metric("pairwise_accuracy", pairwise[name], name)]
    records += [metric("mme_perception", result["perception"], complete=result["complete"]["Perception"]),
                metric("mme_cognition", result["cognition"], complete=result["complete"]["Cognition"])]
    n_errors = sum(r.kind == "image" for r in records)
    images = frame["question_id"].nunique()
    records.append(Record("run", identity, values={
        "n_images": images + n_errors, "n_ok": images, "n_errors": n_errors,
        "n_scored_images": int(predictions["question_id"].nunique()), "fit_fraction": FIT_FRACTION,
        "seconds": seconds, "images_per_s": images / seconds if seconds > 0 else float("nan")}))
    run_dir = job.study_dir / run_id
    RunStore(run_dir).write(records, job.config)
    print(f"MME (CLIP text baseline, thresholds fitted on {FIT_FRACTION:.0%} of each subtask's images, "
          f"scored on the rest): perception {result['perception']:.2f}, cognition {result['cognition']:.2f}")
    for name, sub in result["subtasks"].items():
        print(f"  {name:24s} score {sub['score']:7.2f}  acc {sub['acc']:6.2f}  acc+ {sub['acc_plus']:6.2f}  "
              f"(pairwise accuracy {pairwise[name]:.1f}, not an MME score)")
    if n_errors:
        print(f"{n_errors} image(s) could not be scored; see the error rows", file=sys.stderr)
    print(f"records: {run_dir}")
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):
        print(__doc__)
        print("Overrides are those of `python -m harness` (encoder.*, preprocess=..., dataset.*, study=...).")
        return 0
    return guarded(lambda: run(args) and 0, "harness.benchmarks.mme.baseline")


if __name__ == "__main__":
    sys.exit(main())
