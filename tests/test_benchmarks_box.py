"""The benchmark box: it fills itself from its folders, `harness.mme` still names MME's modules,
and a new benchmark is one folder plus its dataset config (copied package, two additions, the
command runs and the run row carries the new benchmark's score)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.benchmarks import BENCHMARKS
from harness.data import DATASETS
from tests.helpers.benchmarks import png, write_hub_parquet

REPO = Path(__file__).resolve().parents[1]

NEW_INIT = '''"""Colour quiz: what colour is the image? (a benchmark added as one folder)."""
from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark


@BENCHMARKS.register("colour_quiz")
class ColourQuiz(Benchmark):
    task = "short_answer"
'''
NEW_DATA = '''"""Its data: a parquet of question_id, question, answer, image."""
from harness.benchmarks.dataset import BenchmarkDataset
from harness.data import DATASETS
from harness.types import Question


@DATASETS.register("colour_quiz")
class ColourQuizData(BenchmarkDataset):
    benchmark = "colour_quiz"
    hf_id = "nobody/colour-quiz"
    hf_split = "test"
    required = ("question_id", "question", "answer")

    def image_key(self, row):
        return row["question_id"].split("/")[0]

    def questions(self, row):
        return [Question(row["question_id"], row["question"], (row["answer"],))]
'''
NEW_PROMPTS = '''PROMPTS = {"plain": lambda f: f["question"] + " Answer with one word."}
MAX_NEW_TOKENS = {"plain": 4}
'''
NEW_SCORING = '''def parse(response, fields):
    return response.strip().lower()


def score(frame):
    return {"accuracy": float((frame["prediction"] == frame["answer"]).mean()), "n": float(len(frame))}
'''
NEW_CONFIG = '''name: colour_quiz
source: null
path: null
images: null
hf_id: nobody/colour-quiz
config: null
split: test
revision: null
cache_dir: null
categories: null
limit: null
seed: null
max_image_pixels: null
'''


def test_the_registries_fill_themselves_from_the_folders() -> None:
    assert {"mme", "pope"} <= set(BENCHMARKS.names())
    assert {"mme", "pope", "synthetic", "image_folder"} <= set(DATASETS.names())
    import harness.benchmarks.mme.scoring as new
    import harness.mme.scoring as old
    import harness.mme.subtasks as old_subtasks
    from harness.benchmarks.mme import subtasks

    assert old is new and old_subtasks is subtasks  # the old home is an alias, not a copy


@pytest.mark.slow
def test_a_new_benchmark_is_one_folder_and_one_config(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    for folder in ("harness", "configs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    new = root / "harness" / "benchmarks" / "colour_quiz"
    new.mkdir()
    for name, text in {"__init__.py": NEW_INIT, "data.py": NEW_DATA, "prompts.py": NEW_PROMPTS,
                       "scoring.py": NEW_SCORING}.items():
        (new / name).write_text(text)
    (root / "configs" / "dataset" / "colour_quiz.yaml").write_text(NEW_CONFIG)
    import datasets

    s = datasets.Value("string")
    rows = [{"question_id": f"img{k}/{j}", "question": f"What colour is it ({j})?", "answer": colour,
             "image": {"bytes": png((32, 24), rgb), "path": None}}
            for k, (colour, rgb) in enumerate([("red", (255, 0, 0)), ("blue", (0, 0, 255))]) for j in range(2)]
    data = write_hub_parquet(tmp_path / "quiz", "test", {"question_id": s, "question": s, "answer": s,
                                                         "image": datasets.Image()}, rows)
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run(
        [sys.executable, "-m", "harness", "encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random",
         "preprocess=resize", "vlm=internvl", "vlm.protocol=plain", "dataset=colour_quiz", f"dataset.path={data}",
         "progress=false", f"results_dir={tmp_path / 'out'}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    (records,) = (tmp_path / "out" / "runs" / "default").glob("*/records.parquet")
    rec = pd.read_parquet(records)
    q = rec[rec.kind == "question"]
    assert len(q) == 4 and q["prompt"].str.contains(r"\(\d\)\? Answer with one word\.").all()
    assert (q["prediction"] == q["response"].str.strip().str.lower()).all()
    assert (q["new_tokens"] <= 4).all()  # the new benchmark's protocol limit
    run = rec[rec.kind == "run"].iloc[0]
    assert run["colour_quiz_accuracy"] == (q["prediction"] == q["answer"]).mean() and run["colour_quiz_n"] == 4
    assert sorted(rec[rec.kind == "image"]["image_id"]) == ["img0", "img1"]
    bad = subprocess.run(
        [sys.executable, "-m", "harness", "encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random",
         "vlm=internvl", "dataset=colour_quiz", f"dataset.path={data}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "benchmark colour_quiz; valid choices: plain" in bad.stderr
