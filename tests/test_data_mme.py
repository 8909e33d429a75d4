"""MME from a local parquet folder (lmms-lab/MME format), the release folders (both layouts,
nested), and the hub (offline: a clear error; a local `datasets` folder: the real code path)."""

from __future__ import annotations

import os
import pickle
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.benchmarks.mme.subtasks import SUBTASKS as CATEGORIES
from harness.data import build_dataset
from tests.helpers.cli import cli
from tests.helpers.data import mme_images, write_mme_parquet, write_mme_release

ROOT = Path(__file__).resolve().parent.parent
PER_CATEGORY = 3


@pytest.fixture(scope="module")
def images():
    return mme_images(PER_CATEGORY)


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, images):
    return write_mme_parquet(tmp_path_factory.mktemp("mme_parquet"), images, shards=2, rows_per_group=5)


@pytest.fixture(scope="module")
def release_dirs(tmp_path_factory, images):
    flat = write_mme_release(tmp_path_factory.mktemp("mme_release"), images, nested=False)
    nested = write_mme_release(tmp_path_factory.mktemp("mme_release_nested"), images, nested=True, seed=1)
    return flat, nested


def _check_against_fixture(ds, images) -> None:
    expected = {im.id: im for im in images}
    ids = [ds[i].id for i in range(len(ds))]
    assert len(ids) == len(set(ids)) == len(expected) == 14 * PER_CATEGORY
    assert set(ids) == set(expected)
    for i in range(len(ds)):
        s = ds[i]
        im = expected[s.id]
        assert s.category == s.label == im.category
        assert [(q.text, q.answer) for q in s.questions] == list(im.questions)  # grouped by id, Yes first
        assert {q.id for q in s.questions} == {s.id} and {q.category for q in s.questions} == {s.category}
        assert s.image is None  # lazy
        pixels = np.asarray(s.load(), dtype=np.int16)
        assert s.load().mode == "RGB" and s.load().size == im.size
        assert np.abs(pixels - np.array(im.colour)).max() <= 3  # JPEG tolerance; PNG exact


def test_fixture_has_mme_traps(images, parquet_dir):
    names = [im.file_name for im in images]
    assert len(set(names)) < len(names), "file names must repeat across subtasks"
    assert {im.category for im in images} == set(CATEGORIES)
    table = pq.read_table(sorted((parquet_dir / "data").glob("*.parquet"))[0], columns=["question_id", "answer"])
    first_answer: dict[str, str] = {}
    for qid, answer in zip(table["question_id"].to_pylist(), table["answer"].to_pylist(), strict=True):
        first_answer.setdefault(qid, answer)
    assert {"Yes", "No"} <= set(first_answer.values()), "rows must be shuffled so the No question may come first"


def test_parquet_folder(parquet_dir, images):
    ds = build_dataset("mme", path=str(parquet_dir))
    assert ds.source == "parquet" and ds.has_labels
    _check_against_fixture(ds, images)
    assert build_dataset("mme", path=str(parquet_dir / "data")).items == ds.items


def test_parquet_matches_datasets_reference(parquet_dir):
    """Our pyarrow reader against `datasets`' own parquet loader (which decodes to PIL)."""
    import datasets

    ref = datasets.load_dataset("parquet", data_dir=str(parquet_dir / "data"), split="test",
                                cache_dir=str(parquet_dir.parent / "hf_cache"))
    grouped: dict[str, list] = defaultdict(list)
    for row in ref:
        grouped[row["question_id"]].append(row)
    ds = build_dataset("mme", path=str(parquet_dir))
    assert {ds[i].id for i in range(len(ds))} == set(grouped)
    for i in range(len(ds)):
        s = ds[i]
        rows = grouped[s.id]
        assert sorted((r["question"], r["answer"]) for r in rows) == sorted((q.text, q.answer) for q in s.questions)
        assert {r["category"] for r in rows} == {s.category}
        assert np.array_equal(np.asarray(rows[0]["image"].convert("RGB")), np.asarray(s.load()))


def test_parquet_reads_one_row_group_at_a_time(parquet_dir):
    ds = build_dataset("mme", path=str(parquet_dir))
    assert ds._rows._cache is None  # indexing read only the text columns
    for i in range(len(ds)):
        ds[i]
        assert len(ds._rows._cache) <= 5  # rows_per_group of the fixture
    sample = ds[0]
    blob = pickle.dumps(sample)
    assert len(blob) < 3000  # the encoded image bytes and text, not pixels
    assert np.array_equal(np.asarray(pickle.loads(blob).load()), np.asarray(sample.load()))
    assert len(pickle.dumps(ds)) < 20_000  # the index only: no image bytes travel to workers


def test_release_both_layouts_and_nested(release_dirs, images, parquet_dir):
    flat, nested = release_dirs
    assert (flat / "artwork" / "images").is_dir() and (flat / "OCR" / "OCR_000.txt").exists()
    parquet = build_dataset("mme", path=str(parquet_dir))
    for root in (flat, nested):
        ds = build_dataset("mme", path=str(root))
        assert ds.source == "release"
        _check_against_fixture(ds, images)
        by_id = {ds[i].id: ds[i] for i in range(len(ds))}
        for i in range(len(parquet)):
            p = parquet[i]
            assert by_id[p.id].questions == p.questions
            assert np.array_equal(np.asarray(by_id[p.id].load()), np.asarray(p.load()))
    assert build_dataset("mme", path=str(nested / "MME_Benchmark_release_version")).items == build_dataset(
        "mme", path=str(nested)
    ).items


def test_release_errors_name_the_file(tmp_path, images):
    root = write_mme_release(tmp_path, images[:2])
    txt = next((root / images[0].category).glob("*.txt"))
    txt.write_text("Is it? Please answer yes or no.\tYes\nIs it not? Please answer yes or no.\tYes\n")
    with pytest.raises(ValueError, match=r"one Yes and one No"):
        build_dataset("mme", path=str(root), source="release")
    txt.unlink()
    with pytest.raises(ValueError, match=images[0].file_name):
        build_dataset("mme", path=str(root))


def test_categories_limit_seed(parquet_dir):
    ds = build_dataset("mme", path=str(parquet_dir), categories=["OCR", "artwork"])
    assert len(ds) == 2 * PER_CATEGORY
    assert {ds[i].category for i in range(len(ds))} == {"OCR", "artwork"}
    with pytest.raises(ValueError, match=r"unknown categories \[.ocr.\].*posters.*OCR"):
        build_dataset("mme", path=str(parquet_dir), categories=["ocr"])
    full = build_dataset("mme", path=str(parquet_dir))
    first = build_dataset("mme", path=str(parquet_dir), limit=5)
    assert first.items == full.items[:5]
    a = build_dataset("mme", path=str(parquet_dir), limit=7, seed=3)
    b = build_dataset("mme", path=str(parquet_dir), limit=7, seed=3)
    c = build_dataset("mme", path=str(parquet_dir), limit=7, seed=4)
    assert a.items == b.items != c.items and len(a) == 7
    order = [full.items.index(it) for it in a.items]
    assert order == sorted(order)  # a subset in the dataset's order
    with pytest.raises(ValueError, match="source must be one of hub, parquet, release"):
        build_dataset("mme", source="zip", path=str(parquet_dir))


def test_hub_code_path_on_a_local_dataset_folder(parquet_dir, images, tmp_path):
    """`source: hub` runs `datasets.load_dataset(hf_id, ...)`; a local folder id keeps it offline."""
    ds = build_dataset("mme", source="hub", hf_id=str(parquet_dir), cache_dir=str(tmp_path / "cache"))
    assert ds.source == "hub"
    _check_against_fixture(ds, images)


def test_hub_offline_fails_at_once_naming_local_options(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    t0 = time.perf_counter()
    proc = cli("harness", "dataset=mme", "encoder.size=tiny", "encoder.weights=random",
               f"results_dir={tmp_path / 'results'}", env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "lmms-lab/MME" in proc.stderr and "offline" in proc.stderr
    assert "dataset.path=<folder of lmms-lab/MME parquet files" in proc.stderr
    assert "MME_Benchmark_release_version" in proc.stderr
    assert time.perf_counter() - t0 < 60  # no retries against an unreachable hub
    assert not (tmp_path / "results" / "runs").exists()


def test_broken_parquet_copies(tmp_path, parquet_dir, monkeypatch):
    import pyarrow as pa

    table = pq.read_table(sorted((parquet_dir / "data").glob("*.parquet"))[0]).drop_columns(["category"])
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"no column.* category"):
        build_dataset("mme", path=str(tmp_path))
    ds = build_dataset("mme", path=str(parquet_dir))

    def damaged(*_):
        raise pa.ArrowInvalid("bad page")

    monkeypatch.setattr(ds._rows, "image_bytes", damaged)
    from harness.data.images import ImageLoadError

    sample = ds[0]  # the row's text is known; its image read fails when loaded
    with pytest.raises(ImageLoadError, match=rf"{sample.id} .*unreadable: ArrowInvalid: bad page"):
        sample.load()
