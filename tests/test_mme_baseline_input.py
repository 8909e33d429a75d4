"""The MME CLIP baseline on bad input (issue 22 item 9): a null answer or an unknown category is
refused in one line naming the parquet file and row, before CLIP loads (exit 2, nothing
written); undecodable images (garbage bytes, a truncated JPEG, no bytes at all) are error rows
and the run goes on to its scores."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.mme import baseline as mme_baseline
from harness.pipeline.store import find_runs
from tests.helpers.data import MMEImage, mme_images, write_mme_parquet, write_tiny_clip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def never_load(*_: object, **__: object) -> None:
    raise AssertionError("CLIP was loaded for an input that must be refused first")


@pytest.mark.parametrize("column,value,needle", [
    ("answer", None, "answer is None; expected text"),
    ("category", "counting", "unknown category 'counting'"),
])
def test_bad_question_rows_are_refused_before_clip_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], column: str,
                                                         value: object, needle: str) -> None:
    monkeypatch.setattr(mme_baseline, "load_clip", never_load)
    folder = write_mme_parquet(tmp_path / "mme", mme_images(2), shards=1)
    (shard,) = sorted((folder / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    target = next(i for i, r in enumerate(rows) if r["category"] == "count")
    for r in rows:  # the whole image in the unknown category; only the one answer set to null
        if r["question_id"] == rows[target]["question_id"] and (column == "category" or r is rows[target]):
            r[column] = value
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    capsys.readouterr()  # the fixture's own progress output
    code = mme_baseline.main(["encoder.weights=/nonexistent/clip", f"dataset.path={folder}",
                              f"results_dir={tmp_path / 'results'}", "progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{shard} row {target}: {needle}" in err[0]
    assert not (tmp_path / "results" / "runs").exists()


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    return data[: len(data) // 2]  # the header decodes, the scan data stops


BAD = {"scene": b"not an image", "color": truncated_jpeg(), "OCR": b""}


def test_undecodable_images_are_error_rows_and_the_run_goes_on(clip_folder: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = MMEImage.encode
    first: dict[str, str] = {}
    for im in mme_images(4):
        first.setdefault(im.category, im.id)

    def encode(self: MMEImage) -> bytes:  # the first image of each subtask in BAD is damaged
        return BAD[self.category] if self.category in BAD and first[self.category] == self.id else real(self)

    monkeypatch.setattr(MMEImage, "encode", encode)
    parquet = write_mme_parquet(tmp_path / "mme", mme_images(4))
    assert mme_baseline.main([f"encoder.weights={clip_folder}", f"dataset.path={parquet}",
                              f"results_dir={tmp_path / 'results'}", "progress=false"]) == 0
    (run_dir,) = find_runs(tmp_path / "results" / "runs")
    rec = pd.read_parquet(run_dir / "records.parquet")
    errors = rec[rec["kind"] == "image"]
    assert sorted(errors["category"]) == sorted(BAD)
    assert (errors["status"] == "error:input").all() and errors["message"].str.len().gt(0).all()
    run = rec[rec["kind"] == "run"].iloc[0]
    assert run["n_errors"] == len(BAD) and run["n_ok"] == 14 * 4 - len(BAD)
    questions = rec[rec["kind"] == "question"]
    assert not set(errors["image_id"]) & set(questions["image_id"])  # no answer for an image never seen
    assert len(rec[(rec["kind"] == "metric") & (rec["metric"] == "mme_score")]) == 14  # every subtask scored
