"""POPE: its parsers and metrics against hand-worked examples (AoiDragon/POPE evaluate.py and
lmms-eval tasks/pope/utils.py, transcribed in docs/benchmarks.md), the loader on a parquet built
in the hub's schema, the hub code path and the release files, and a tiny VLM answering it end
to end with every question of an image answered from one encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.benchmarks import get_benchmark
from harness.benchmarks.pope.prompts import PARSERS, PROMPTS
from harness.benchmarks.pope.scoring import score
from harness.benchmarks.yes_no import vlmevalkit_parse
from harness.config import ConfigError, compose
from harness.data import build_dataset
from harness.pipeline.execute import execute
from harness.pipeline.job import prepare_job
from harness.types import Question
from tests.helpers.benchmarks import pope_rows, write_pope_parquet, write_pope_release

POPE = get_benchmark("pope")


@pytest.mark.parametrize("response,official,lmms_eval", [
    ("Yes", "yes", "yes"),
    ("No", "no", "no"),
    ("  Yes \n", "yes", "yes"),
    ("Yes.", "yes", "yes."),                       # lmms-eval keeps the period: neither yes nor no
    ("No, there is not.", "no", "no, there is not."),
    ("There is not a dog.", "no", "there is not a dog."),
    ("no, wait. Yes", "no", "no, wait. yes"),      # the release reads the first sentence only
    ("Yes. No", "yes", "yes. no"),
    ("I don't know", "yes", "i don't know"),       # the release: anything without no/not is yes
    ("NO", "yes", "no"),                           # the release matches `No`, `no`, `not` only
    ("Nope", "yes", "nope"),
    ("", "yes", ""),
])
def test_parsers(response: str, official: str, lmms_eval: str) -> None:
    assert PARSERS["official"](response) == official
    assert PARSERS["lmms_eval"](response) == lmms_eval


def test_prompts() -> None:
    q = Question("random/1", " Is there a dog in the image? ", ("yes",), "random")
    assert POPE.prompt(q, "official") == " Is there a dog in the image? "
    assert POPE.prompt(q, "lmms_eval") == (
        "Is there a dog in the image?\nAnswer the question using a single word or phrase.")
    assert POPE.prompt(q, "vlmevalkit") == " Is there a dog in the image? "
    assert POPE.prompt(q, "vlmevalkit", "qwen2_vl") == " Is there a dog in the image?  Please answer yes or no."
    assert POPE.max_new_tokens("lmms_eval") == 128 and POPE.task == "yes_no"
    assert PARSERS["vlmevalkit"] is vlmevalkit_parse  # MME's VLMEvalKit parser (tests/test_vlm_protocols.py)
    assert PARSERS["vlmevalkit"]("There is no dog.") == "no" and PARSERS["vlmevalkit"]("Yes and no") == "other"
    assert set(PROMPTS) == set(PARSERS) == set(POPE.protocols())


def test_metrics_hand_worked() -> None:
    # 8 questions: gt yes x4, no x4. Predictions: yes yes no "yes." | yes no no no
    # TP=2, FN=1 (the "yes." is in no count), FP=1, TN=3; accuracy 5/8; precision 2/3; recall 2/3
    frame = pd.DataFrame({
        "question_id": [f"random/{i}" for i in range(8)], "category": ["random"] * 4 + ["adversarial"] * 4,
        "answer": ["yes"] * 4 + ["no"] * 4,
        "prediction": ["yes", "yes", "no", "yes.", "yes", "no", "no", "no"],
    })
    got = score(frame)
    assert got["accuracy"] == pytest.approx(5 / 8)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)
    assert got["yes_ratio"] == pytest.approx(3 / 8)
    # per setting: random has TP 2, FN 1, no FP -> precision 1, recall 2/3, F1 0.8, accuracy 2/4
    assert got["precision/random"] == 1.0 and got["recall/random"] == pytest.approx(2 / 3)
    assert got["f1/random"] == pytest.approx(0.8) and got["accuracy/random"] == 0.5
    # adversarial: one FP, no TP -> precision 0, recall 0 (no yes in the truth), F1 0 (no division by zero)
    assert got["precision/adversarial"] == 0.0 and got["recall/adversarial"] == 0.0 and got["f1/adversarial"] == 0.0
    assert got["accuracy/adversarial"] == 0.75 and got["yes_ratio/adversarial"] == 0.25
    with pytest.raises(ValueError, match="yes or no"):
        score(frame.assign(answer="maybe"))


def test_summarize_names_run_columns_and_metric_rows() -> None:
    frame = pd.DataFrame({"question_id": ["random/1", "popular/1"], "category": ["random", "popular"],
                          "answer": ["yes", "no"], "prediction": ["yes", "yes"]})
    values, metrics = POPE.summarize(frame)
    assert values["pope_accuracy"] == 0.5 and values["pope_precision_popular"] == 0.0
    assert ("pope_f1", pytest.approx(2 / 3), None) in metrics and ("pope_accuracy", 1.0, "random") in metrics


def _questions(ds) -> dict[str, tuple[str, str, str]]:
    return {q.id: (q.text, q.answer, q.category) for i in range(len(ds)) for q in ds[i].questions}


def test_parquet_in_hub_schema_groups_questions_by_image(tmp_path: Path) -> None:
    rows = pope_rows()
    ds = build_dataset("pope", path=str(write_pope_parquet(tmp_path / "pope")))
    assert ds.source == "parquet" and len(ds) == 3
    want = {f"{r['category']}/{r['question_id']}": (r["question"], r["answer"], r["category"]) for r in rows}
    assert _questions(ds) == want and len(want) == len(rows)  # ids unique across settings
    by_source = {r["image_source"]: r for r in rows}
    for i in range(len(ds)):
        s = ds[i]
        assert len(s.questions) == 6  # every question of the image, all settings
        assert np.array_equal(np.asarray(s.load()), np.asarray(build_image(by_source[s.id])))
    only = build_dataset("pope", path=str(tmp_path / "pope"), categories=["adversarial"])
    assert {c for _, _, c in _questions(only).values()} == {"adversarial"}
    assert build_dataset("pope", path=str(tmp_path / "pope"), limit=2).params()["n"] == 2


def build_image(row):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")


def test_hub_code_path_and_release_files_give_the_same_questions(tmp_path: Path) -> None:
    folder = write_pope_parquet(tmp_path / "pope")
    hub = build_dataset("pope", source="hub", hf_id=str(folder), cache_dir=str(tmp_path / "cache"))
    assert hub.source == "hub" and _questions(hub) == _questions(build_dataset("pope", path=str(folder)))
    root, images = write_pope_release(tmp_path / "release")
    release = build_dataset("pope", path=str(root), images=str(images))
    assert release.source == "release" and _questions(release) == _questions(hub)
    assert sorted(len(release[i].questions) for i in range(len(release))) == [6, 6, 6]
    (images / "COCO_val2014_000000000001.jpg").unlink()  # a missing image is that image's error
    from harness.data.images import ImageLoadError

    broken = build_dataset("pope", path=str(root), images=str(images))
    with pytest.raises(ImageLoadError):
        next(broken[i] for i in range(len(broken)) if broken[i].id.endswith("1.jpg")).load()


def test_bad_config_fails_before_loading(tmp_path: Path) -> None:
    folder = write_pope_parquet(tmp_path / "pope")
    base = ["encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random", "vlm=internvl",
            "dataset=pope", f"dataset.path={folder}"]
    with pytest.raises(ConfigError, match=r"benchmark pope; valid choices: official, lmms_eval, vlmevalkit$"):
        prepare_job(compose([*base, "vlm.protocol=internvl"]))
    with pytest.raises(ConfigError, match=r"dataset\.source must be one of hub, parquet, release"):
        prepare_job(compose([*base, "dataset.source=nope"]))
    with pytest.raises(ConfigError, match="does not exist"):
        prepare_job(compose([*base[:-1], f"dataset.path={tmp_path / 'nowhere'}"]))
    job = prepare_job(compose([*base, "vlm.protocol=lmms_eval"]))
    assert job.answerer_kwargs["max_new_tokens"] == 128  # the benchmark's protocol limit


@pytest.mark.slow
def test_tiny_vlm_answers_pope_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_pope_parquet(tmp_path / "pope")
    from harness.vlm.base import Answerer

    calls: list[tuple[int, int]] = []
    real = Answerer.answer_many

    def spy(self, visual, texts, **kw):
        calls.append((id(visual), len(texts)))
        return real(self, visual, texts, **kw)

    monkeypatch.setattr(Answerer, "answer_many", spy)
    cfg = compose(["encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random", "preprocess=resize",
                   "vlm=internvl", "vlm.protocol=lmms_eval", "vlm.max_new_tokens=3", "progress=false",
                   "dataset=pope", f"dataset.path={folder}", f"results_dir={tmp_path / 'out'}"])
    outcome = execute(prepare_job(cfg))
    assert outcome.status == "ok", outcome.message
    rec = pd.read_parquet(outcome.run_dir / "records.parquet")
    q = rec[rec.kind == "question"]
    assert len(q) == 18 and (q.status == "ok").all()
    assert [n for _, n in calls] == [6, 6, 6] and len({v for v, _ in calls}) == 3  # an image's six questions
    # answered together from its one encoding
    assert q["prompt"].str.contains("in the image\\?\nAnswer the question using a single word or phrase.").all()
    assert (q["prediction"] == q["response"].map(PARSERS["lmms_eval"])).all()
    run = rec[rec.kind == "run"].iloc[0]
    want = score(q[["question_id", "category", "answer", "prediction"]])
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert run[f"pope_{key}"] == pytest.approx(want[key])
        assert run[f"pope_{key}_adversarial"] == pytest.approx(want[f"{key}/adversarial"])
    assert run["answers_complete"] and run["dataset"] == "pope"
    metrics = rec[(rec.kind == "metric") & (rec.metric == "pope_f1")]
    assert set(metrics["category"].dropna()) == {"adversarial", "popular", "random"}
