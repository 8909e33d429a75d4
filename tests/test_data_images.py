"""Bad input loses nothing: each odd file becomes a correct RGB image or an error row naming
the file and the reason; `max_error_fraction` decides the exit code after everything is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.data import build_dataset
from harness.data.images import ImageLoadError, open_image
from tests.helpers.cli import cli
from tests.helpers.data import BAD_EXPECTED, write_bad_folder

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1_000_000  # over_limit.png has 1.2 M pixels


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    return write_bad_folder(tmp_path_factory.mktemp("bad_images"))


def test_odd_modes_convert_correctly(bad_dir):
    with Image.open(bad_dir / "gray16.png") as im:
        assert im.mode.startswith("I")  # 16-bit greyscale as PIL opens it
        assert np.asarray(im.convert("RGB")).max() == 255  # PIL's plain convert clips: the bug avoided
    assert np.array_equal(np.unique(np.asarray(open_image(bad_dir / "gray16.png"))), [127])  # 32767/257
    with Image.open(bad_dir / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    assert np.abs(np.asarray(open_image(bad_dir / "cmyk.jpg"), dtype=int) - [255, 0, 0]).max() <= 2
    pal = np.asarray(open_image(bad_dir / "palette_transparent.png"))
    assert (pal[:, :16] == [0, 0, 255]).all() and (pal[:, 16:] == 255).all()  # transparent -> white
    with Image.open(bad_dir / "animated.gif") as im:
        assert im.n_frames == 3
    assert (np.asarray(open_image(bad_dir / "animated.gif")) == [255, 0, 0]).all()  # first frame
    for name in ("good_a.png", "good_b.jpg"):
        with Image.open(bad_dir / name) as im:
            assert np.array_equal(np.asarray(open_image(bad_dir / name)), np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("name", [n for n, v in BAD_EXPECTED.items() if v != "ok"])
def test_errors_name_the_file_and_reason(bad_dir, name):
    with pytest.raises(ImageLoadError) as info:
        open_image(bad_dir / name, max_pixels=LIMIT)
    assert f"error:{info.value.kind}" == BAD_EXPECTED[name]
    assert name in str(info.value)
    data = (bad_dir / name).read_bytes()
    with pytest.raises(ImageLoadError) as info:
        open_image(data, name=f"blob/{name}", max_pixels=LIMIT)
    assert f"error:{info.value.kind}" == BAD_EXPECTED[name] and f"blob/{name}" in str(info.value)


def test_pixel_limit_is_per_call_and_restored(bad_dir):
    before = Image.MAX_IMAGE_PIXELS
    assert open_image(bad_dir / "over_limit.png").size == (1200, 1000)
    with pytest.raises(ImageLoadError, match="too_large"):
        open_image(bad_dir / "over_limit.png", max_pixels=LIMIT)
    assert Image.MAX_IMAGE_PIXELS == before
    with pytest.raises(ImageLoadError, match=r"huge_header\.png: too_large"):
        open_image(bad_dir / "huge_header.png")  # 9e10 pixels declared, default limit


def test_missing_file():
    with pytest.raises(ImageLoadError, match="missing"):
        open_image("/nonexistent/x.png")


def test_image_folder_listing_and_labels(tmp_path):
    for rel in ("b/2.png", "a/1.jpg", "a/deep/3.png", "top.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            (tmp_path / rel).write_text("x")
        else:
            Image.new("RGB", (8, 8)).save(tmp_path / rel)
    ds = build_dataset("image_folder", path=str(tmp_path), labels="subfolder")
    assert [ds[i].id for i in range(len(ds))] == ["a/1.jpg", "a/deep/3.png", "b/2.png", "top.png"]
    assert [ds[i].label for i in range(len(ds))] == ["a", "a", "b", None]
    assert ds.has_labels and ds[0].image is None and ds[0].load().size == (8, 8)
    flat = build_dataset("image_folder", path=str(tmp_path), recursive=False)
    assert [flat[i].id for i in range(len(flat))] == ["top.png"] and flat[0].label is None
    assert len(build_dataset("image_folder", path=str(tmp_path), limit=2, seed=0)) == 2
    with pytest.raises(ValueError, match="labels must be one of none, subfolder"):
        build_dataset("image_folder", path=str(tmp_path), labels="folder")
    with pytest.raises(ValueError, match="not a folder"):
        build_dataset("image_folder", path=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no images"):
        build_dataset("image_folder", path=str(tmp_path / "b"), extensions=[".tif"])


def _run(bad_dir: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("harness", "dataset=image_folder", f"dataset.path={bad_dir}", f"dataset.max_image_pixels={LIMIT}",
               "encoder.size=tiny", "encoder.weights=random", f"results_dir={results}", "progress=false", *extra)


def _records(results: Path) -> tuple[Path, pd.DataFrame]:
    (run_dir,) = (results / "runs" / "default").iterdir()
    return run_dir, pd.read_parquet(run_dir / "records.parquet")


def test_bad_folder_end_to_end(bad_dir, tmp_path):
    proc = _run(bad_dir, tmp_path / "strict", "num_workers=2")
    assert proc.returncode == 1, proc.stderr
    run_dir, df = _records(tmp_path / "strict")
    assert (run_dir / "COMPLETE").exists()  # written before the non-zero exit
    assert sorted(p.name for p in run_dir.iterdir()) == ["COMPLETE", "config.yaml", "embeddings.npz",
                                                         "records.parquet"]  # ids never became paths
    images = df[df["kind"] == "image"]
    assert sorted(images["image_id"]) == sorted(BAD_EXPECTED)  # every file once
    assert dict(zip(images["image_id"], images["status"], strict=True)) == BAD_EXPECTED
    for _, row in images.iterrows():
        if row["status"] == "ok":
            assert row["visual_tokens"] == 576 and row["message"] == ""
        else:
            assert row["image_id"] in row["message"] and row["status"].split(":")[1] in row["message"]
    ok = images[images["status"] == "ok"].set_index("image_id")
    assert (ok.loc["gray16.png", ["width", "height"]] == [30, 20]).all()
    n_lost = sum(v != "ok" for v in BAD_EXPECTED.values())
    assert f"{n_lost} of {len(BAD_EXPECTED)} images failed" in proc.stderr
    for name, status in BAD_EXPECTED.items():
        if status != "ok":
            assert f"{name}: {status}" in proc.stderr

    tolerant = _run(bad_dir, tmp_path / "tolerant", "max_error_fraction=1.0")
    assert tolerant.returncode == 0, tolerant.stderr
    _, df2 = _records(tmp_path / "tolerant")
    images2 = df2[df2["kind"] == "image"]
    assert dict(zip(images2["image_id"], images2["status"], strict=True)) == BAD_EXPECTED


def test_image_folder_symlinks(tmp_path):
    """A dangling link becomes an error row naming the link; a linked subfolder is listed once,
    a link looping back to an ancestor adds nothing and does not hang."""
    root = tmp_path / "imgs"
    (root / "real").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(root / "real" / "a.png")
    Image.new("RGB", (8, 8)).save(outside / "b.png")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    (root / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    ds = build_dataset("image_folder", path=str(root))
    ids = [ds[i].id for i in range(len(ds))]
    # real/ and alias/ are one folder: listed once, under its real name
    assert ids == ["gone.jpg", "linked/b.png", "real/a.png"]
    assert ds[1].load().size == (8, 8)
    with pytest.raises(ImageLoadError, match="dangling symbolic link") as info:
        ds[0].load()
    assert info.value.kind == "missing" and "gone.jpg" in str(info.value)
