"""The loaders of TextVQA, DocVQA, ChartQA and MMBench on parquet files built in the hub's
schema, the hub code path (`datasets.load_dataset` of a local folder) and the release files:
the same questions from every source, grouped by image (each image encoded once), ground truth
as the benchmark states it, MMBench's circular copies sharing their question's id and image."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.benchmarks import get_benchmark
from harness.config import ConfigError, compose
from harness.data import build_dataset
from harness.pipeline.job import prepare_job
from harness.types import Question
from tests.helpers.benchmarks import (
    chartqa_rows,
    docvqa_rows,
    mmbench_rows,
    textvqa_rows,
    write_chartqa_parquet,
    write_chartqa_release,
    write_docvqa_parquet,
    write_docvqa_release,
    write_mmbench_parquet,
    write_mmbench_tsv,
    write_textvqa_parquet,
    write_textvqa_release,
)


def questions_of(ds) -> dict[str, Question]:
    return {q.id: q for i in range(len(ds)) for q in ds[i].questions}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_textvqa_parquet_hub_and_release(tmp_path: Path) -> None:
    rows = textvqa_rows()
    folder = write_textvqa_parquet(tmp_path / "textvqa")
    ds = build_dataset("textvqa", path=str(folder))
    assert ds.source == "parquet" and sorted(ds[i].id for i in range(len(ds))) == ["a1", "b2"]
    assert sorted(len(ds[i].questions) for i in range(len(ds))) == [1, 3]
    got = questions_of(ds)
    for r in rows:
        q = got[str(r["question_id"])]
        assert q.text == r["question"] and q.answers == tuple(r["answers"]) and len(q.answers) == 10
        assert q.fields["ocr_tokens"] == r["ocr_tokens"]
    for i in range(len(ds)):
        want = next(r for r in rows if r["image_id"] == ds[i].id)["image"]["bytes"]
        assert np.array_equal(np.asarray(ds[i].load()), pixels(want))
    hub = build_dataset("textvqa", source="hub", hf_id=str(folder), cache_dir=str(tmp_path / "cache"))
    assert questions_of(hub) == got
    release = build_dataset("textvqa", path=str(write_textvqa_release(tmp_path / "release")))
    assert release.source == "release"
    assert {k: (q.text, q.answers) for k, q in questions_of(release).items()} == {
        k: (q.text, q.answers) for k, q in got.items()}
    bench = get_benchmark("textvqa")
    q = got["102"]
    assert json.loads(bench.answer_text(q)) == ["coca cola"] * 4 + ["coke"] * 6


def test_docvqa_parquet_in_config_folder_and_release(tmp_path: Path) -> None:
    folder = write_docvqa_parquet(tmp_path / "DocVQA")
    ds = build_dataset("docvqa", path=str(folder))  # <folder>/DocVQA/validation-*.parquet
    assert ds.config == "DocVQA" and sorted(ds[i].id for i in range(len(ds))) == ["nkbl0226_1", "pybv0228_81"]
    got = questions_of(ds)
    assert got["49150"].answers == ("1/8/93", "January 8, 1993") and got["49150"].fields["question_types"] == [
        "handwritten"]
    assert {q.id for i in range(len(ds)) if ds[i].id == "pybv0228_81" for q in ds[i].questions} == {"49150", "49152"}
    release = build_dataset("docvqa", path=str(write_docvqa_release(tmp_path / "release")))
    assert {k: (q.text, q.answers) for k, q in questions_of(release).items()} == {
        k: (q.text, q.answers) for k, q in got.items()}
    by_id = {release[i].id: release[i] for i in range(len(release))}
    page = next(r for r in docvqa_rows() if r["ucsf_document_id"] == "nkbl0226")["image"]["bytes"]
    assert np.array_equal(np.asarray(by_id["nkbl0226_1"].load()), pixels(page))


def test_chartqa_shares_images_by_their_bytes_and_reads_the_release(tmp_path: Path) -> None:
    ds = build_dataset("chartqa", path=str(write_chartqa_parquet(tmp_path / "chartqa")))
    assert len(ds) == 3  # four questions, three distinct charts (no image ids in the hub's columns)
    assert sorted(len(ds[i].questions) for i in range(len(ds))) == [1, 1, 2]
    want = sorted((r["type"], r["question"], r["answer"]) for r in chartqa_rows())
    got = sorted((q.category, q.text, q.answer) for q in questions_of(ds).values())
    assert got == want and {q.id for q in questions_of(ds).values()} == {
        "human_test/0", "human_test/1", "human_test/2", "augmented_test/0"}
    release = build_dataset("chartqa", path=str(write_chartqa_release(tmp_path / "release")))
    assert sorted((q.category, q.text, q.answer) for q in questions_of(release).values()) == want
    assert len(release) == 3
    human = build_dataset("chartqa", path=str(tmp_path / "chartqa"), categories=["human_test"])
    assert {q.category for q in questions_of(human).values()} == {"human_test"} and len(human) == 2


def test_mmbench_circular_copies_share_the_question_and_its_image(tmp_path: Path) -> None:
    folder = write_mmbench_parquet(tmp_path / "MMBench")
    ds = build_dataset("mmbench", path=str(folder))  # <folder>/en/dev-*.parquet
    assert len(ds) == 2
    by_image = {ds[i].id: ds[i].questions for i in range(len(ds))}
    assert sorted(by_image) == ["0", "1"] and [len(by_image["0"]), len(by_image["1"])] == [4, 2]
    for image, qs in by_image.items():
        assert {q.id for q in qs} == {image}  # one unit of scoring per original question
        assert sorted(q.fields["circular_index"] for q in qs) == list(range(len(qs)))
    cat = {q.fields["circular_index"]: q for q in by_image["0"]}
    assert cat[0].options == {"A": "red", "B": "green", "C": "blue", "D": "black"} and cat[0].answer == "D"
    assert cat[1].options == {"A": "green", "B": "blue", "C": "black", "D": "red"} and cat[1].answer == "C"
    assert cat[1].fields["index"] == 1_000_000 and cat[0].fields["hint"] is None
    sky = {q.fields["circular_index"]: q for q in by_image["1"]}
    assert sky[0].options == {"A": "yes", "B": "no"} and sky[0].fields["hint"] == "Look up."
    once = build_dataset("mmbench", path=str(folder), circular=False)
    assert sorted(q.fields["circular_index"] for q in questions_of_all(once)) == [0, 0]
    release = build_dataset("mmbench", path=str(write_mmbench_tsv(tmp_path / "MMBench_DEV_EN.tsv")))
    assert release.source == "release"
    assert sorted((q.fields["index"], q.answer, tuple(q.options.items())) for q in questions_of_all(release)) == sorted(
        (q.fields["index"], q.answer, tuple(q.options.items())) for q in questions_of_all(ds))
    rel = {release[i].id: release[i] for i in range(len(release))}
    original = next(r for r in mmbench_rows() if r["index"] == 1)["image"]["bytes"]
    assert np.array_equal(np.asarray(rel["1"].load()), pixels(original))  # the copy's image is its original's


def questions_of_all(ds) -> list[Question]:
    return [q for i in range(len(ds)) for q in ds[i].questions]


def test_mmbench_originals_only_are_rotated_by_the_scoring_module(tmp_path: Path) -> None:
    pytest.importorskip("harness.benchmarks.mmbench.scoring", reason="the scoring engineer's module (merged later)")
    ds = build_dataset("mmbench", path=str(write_mmbench_parquet(tmp_path / "MMBench", copies=False)))
    qs = {ds[i].id: ds[i].questions for i in range(len(ds))}
    assert sorted(len(v) for v in qs.values()) == [2, 4]  # one copy per rotation of the options
    answers = {q.options[q.answer] for q in qs["0"]}
    assert answers == {"black"}  # the right option's text stays right in every rotation


def test_scoring_frame_expands_fields_and_options() -> None:
    bench = get_benchmark("mmbench")
    rows = [{"question_id": "0", "category": "c", "answer": "D", "prediction": "D",
             "options": json.dumps({"A": "red", "D": "black"}),
             "fields": json.dumps({"index": 0, "circular_index": 0})}]
    frame = bench.frame(rows)
    assert frame.loc[0, "options"] == {"A": "red", "D": "black"}
    assert frame.loc[0, "index"] == 0 and frame.loc[0, "circular_index"] == 0
    assert isinstance(frame, pd.DataFrame)


@pytest.mark.parametrize("name", ["textvqa", "docvqa", "chartqa", "mmbench"])
def test_offline_hub_fails_in_one_line_naming_the_local_options(name: str, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = compose(["encoder.size=tiny", "encoder.weights=random", f"dataset={name}"])
    with pytest.raises(ConfigError, match=r"offline .* not in the cache; use a local copy instead: dataset\.path="):
        prepare_job(cfg)
