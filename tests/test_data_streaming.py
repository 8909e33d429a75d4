"""Streaming: decode + preprocess in DataLoader workers, results in the dataset's order, samples
that are cheap to pickle, and memory bounded by one parquet row group, not by the dataset."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import build_dataset
from harness.pipeline.runner import Runner
from harness.preprocess import build_strategy
from tests.helpers.data import BAD_EXPECTED, MMEImage, mme_images, write_bad_folder, write_mme_parquet

pytestmark = pytest.mark.slow  # a 310 MB parquet fixture

ROOT = Path(__file__).resolve().parent.parent


def _prepared(dataset, num_workers: int):
    runner = Runner(dataset, build_strategy("resize", tile_size=28), encoder=None, identity={},  # type: ignore[arg-type]
                    num_workers=num_workers, progress=False)
    return list(runner._prepared())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_workers_keep_dataset_order_and_errors_in_place(tmp_path, num_workers):
    root = write_bad_folder(tmp_path / "bad")
    for k in range(6):  # more good images, so that both workers get several
        Image.new("RGB", (20 + k, 10), (k * 40, 0, 0)).save(root / f"z{k}.png")
    ds = build_dataset("image_folder", path=str(root), max_image_pixels=1_000_000)
    items = _prepared(ds, num_workers)
    assert [p.sample_id for p in items] == [ds[i].id for i in range(len(ds))]
    assert [p.index for p in items] == list(range(len(ds)))
    for p in items:
        expected = BAD_EXPECTED.get(p.sample_id, "ok")
        assert (p.views is not None) == (expected == "ok")
        if expected != "ok":
            assert f"error:{p.error_kind}" == expected and p.sample_id in p.error
        else:
            assert p.decode_ms >= 0 and tuple(p.views.pixel_values.shape) == (1, 3, 28, 28)


def test_synthetic_in_workers_matches_in_process():
    ds = build_dataset("synthetic", num_images=10, max_side=300)
    serial, parallel = _prepared(ds, 0), _prepared(ds, 2)
    assert [p.sample_id for p in parallel] == [f"synthetic/0/{i:06d}" for i in range(10)]
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a.views.pixel_values.numpy(), b.views.pixel_values.numpy())


def test_samples_are_lazy_and_cheap_to_pickle(tmp_path):
    Image.new("RGB", (1500, 1500), (1, 2, 3)).save(tmp_path / "big.png")
    for ds in (build_dataset("synthetic", num_images=20), build_dataset("image_folder", path=str(tmp_path))):
        for i in range(len(ds)):
            s = ds[i]
            assert s.image is None
            blob = pickle.dumps(s)
            assert len(blob) < 3000, (s.id, len(blob))  # a spec or a path, never pixels
            assert pickle.loads(blob).load().size == s.load().size


def _noise_png(seed: int) -> MMEImage:
    return MMEImage("scene", f"noise_{seed:04d}.png", (96, 96), (0, 0, 0), (("q yes?", "Yes"), ("q no?", "No")))


# Arrow's allocation counter is per process and its pool keeps what earlier tests left, so each
# set is walked in a fresh interpreter: the peaks then depend on the set alone.
_WALK = """
import sys
import pyarrow as pa
from harness.data import build_dataset
ds = build_dataset("mme", path=sys.argv[1])
total = sum(len(ds._rows.image_bytes(*it[3])) for it in ds.items)
ds = build_dataset("mme", path=sys.argv[1])
base, peak = pa.total_allocated_bytes(), 0
for i in range(len(ds)):
    ds[i].load()
    peak = max(peak, pa.total_allocated_bytes() - base)
print(peak, total)
"""


def _arrow_peak(root) -> tuple[int, int]:
    """(peak Arrow bytes while decoding every image in order, total image bytes of the set)."""
    out = subprocess.run([sys.executable, "-c", _WALK, str(root)], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=300)
    peak, total = out.stdout.split()
    return int(peak), int(total)


def test_parquet_memory_does_not_grow_with_the_dataset(tmp_path, monkeypatch):
    """Arrow memory while walking the whole set stays near a few row groups: 13x the images, a
    peak bounded by a few times the small set's, and far below the set's size."""
    rng = np.random.default_rng(0)

    def encode(self) -> bytes:  # incompressible 96x96 PNGs (~27 KB), so sizes mean something
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(buf, "PNG")
        return buf.getvalue()

    monkeypatch.setattr(MMEImage, "encode", encode)
    small = write_mme_parquet(tmp_path / "small", [*mme_images(1), *(_noise_png(k) for k in range(30))],
                              shards=1, rows_per_group=8)
    large = write_mme_parquet(tmp_path / "large", [*mme_images(1), *(_noise_png(k) for k in range(400))],
                              shards=1, rows_per_group=8)
    peak_small, total_small = _arrow_peak(small)
    peak_large, total_large = _arrow_peak(large)
    assert total_large > 9 * total_small and total_large > 10_000_000
    assert peak_large < 4 * peak_small + 200_000, (peak_small, peak_large)
    assert peak_large < total_large / 10, (peak_large, total_large)


def test_mme_parquet_in_two_workers_keeps_order(tmp_path):
    root = write_mme_parquet(tmp_path, mme_images(2), shards=2, rows_per_group=3)
    ds = build_dataset("mme", path=str(root))
    items = _prepared(ds, 2)
    assert [p.sample_id for p in items] == [ds[i].id for i in range(len(ds))]
    assert all(p.views is not None for p in items) and len(items) == 28
