"""The synthetic set: same seed same bytes, true labels and questions, extreme sizes, and small
print that a 336 squash destroys while a 448 tile keeps it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.benchmarks.mme.subtasks import ANSWER_SUFFIX as SUFFIX
from harness.data import build_dataset
from harness.data.synthetic import COLOURS, OPPOSITE, SIZES, make_spec, render, text_box

ROOT = Path(__file__).resolve().parent.parent
HASH_SNIPPET = (
    "import hashlib; from harness.data import build_dataset; ds = build_dataset('synthetic', num_images=6, seed=3);"
    "print(hashlib.sha256(b''.join(ds[i].load().tobytes() for i in range(6))).hexdigest())"
)


def _digest(ds, n: int) -> str:
    return hashlib.sha256(b"".join(ds[i].load().tobytes() for i in range(n))).hexdigest()


def test_same_seed_same_bytes_across_processes():
    here = _digest(build_dataset("synthetic", num_images=6, seed=3), 6)
    assert here == _digest(build_dataset("synthetic", num_images=6, seed=3), 6)
    assert here != _digest(build_dataset("synthetic", num_images=6, seed=4), 6)
    other = subprocess.run([sys.executable, "-c", HASH_SNIPPET], cwd=ROOT, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert other.stdout.strip() == here, other.stderr


def test_sizes_and_speed():
    ds = build_dataset("synthetic", num_images=len(SIZES))
    t0 = time.perf_counter()
    sizes = [ds[i].load().size for i in range(len(ds))]
    per_image_ms = (time.perf_counter() - t0) / len(ds) * 1e3
    assert sizes == list(SIZES)
    ratios = [max(w, h) / min(w, h) for w, h in sizes]
    assert max(ratios) >= 30 and min(ratios) == 1 and max(max(s) for s in sizes) == 2000
    assert per_image_ms < 40, per_image_ms  # about 1-2 ms measured; loose for a shared CPU
    small = build_dataset("synthetic", num_images=len(SIZES), max_side=500)
    assert all(max(small[i].load().size) <= 500 for i in range(len(small)))


def test_labels_and_questions_are_true():
    ds = build_dataset("synthetic", num_images=72, max_side=600)
    kinds, yes_first = set(), set()
    for i in range(len(ds)):
        s = ds[i]
        spec = make_spec(0, i, 600)
        assert s.label == s.category == spec["shape"]
        pairs = [(q.text, q.answer) for q in s.questions]
        assert {q.id for q in s.questions} == {s.id}
        assert sorted(a for _, a in pairs) == ["No", "Yes"]
        assert all(q.endswith(SUFFIX) for q, _ in pairs)
        yes_q = next(q for q, a in pairs if a == "Yes")
        no_q = next(q for q, a in pairs if a == "No")
        kinds.add(s.meta["question_kind"])
        yes_first.add(pairs[0][1] == "Yes")
        assert yes_q != no_q
        w, h = s.load().size
        if min(w, h) < 100:
            continue
        pixels = np.asarray(s.load())
        mask = (pixels == COLOURS[s.meta["colour"]]).all(-1)
        for other, rgb in COLOURS.items():
            if other != s.meta["colour"]:
                assert not (pixels == rgb).all(-1).any()
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        cx, cy = xs.mean() / w, ys.mean() / h
        pos = s.meta["position"]
        assert {"left": cx < 0.5, "right": cx > 0.5, "top": cy < 0.5, "bottom": cy > 0.5}[pos]
        x0, y0, x1, y1 = {"left": (0, 0, w / 2, h), "right": (w / 2, 0, w, h), "top": (0, 0, w, h / 2),
                          "bottom": (0, h / 2, w, h)}[pos]
        along = mask.any(0) if (x1 - x0) >= (y1 - y0) else mask.any(1)  # shapes line up the long side
        runs = int(along[0]) + int(np.count_nonzero(along[1:] & ~along[:-1]))
        assert runs == s.meta["count"]
        if s.meta["question_kind"] == "position":
            assert pos in yes_q and OPPOSITE[pos] in no_q
        if s.meta["question_kind"] == "word":
            assert f'"{s.meta["word"]}"' in yes_q
        x0, t, r, b = s.meta["text_box"]
        assert pixels[t:b, x0:r].min() < 60  # the small print is there
    assert kinds == {"colour", "count", "position", "word"} and yes_first == {True, False}


def _text_contrast(image: Image.Image, box: tuple[int, int, int, int], scale: float) -> float:
    left, top, right, bottom = box
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    rows = slice(int(top * scale), int(np.ceil(bottom * scale)) + 1)
    return float(grey[rows, int(left * scale): int(np.ceil(right * scale)) + 1].std())


def test_small_print_survives_tiling_not_a_336_squash():
    """Pixel contrast of the word's box: a 336 squash of the 2000x2000 image (CLIP resize)
    keeps under a third of it; a 448 tile of the 1344x1344 resize (InternVL 3x3) keeps over half."""
    index = SIZES.index((2000, 2000))
    for seed in range(4):
        spec = make_spec(seed, index)
        image, box = render(spec), text_box(spec)
        full = _text_contrast(image, box, 1.0)
        squash = _text_contrast(image.resize((336, 336), Image.BICUBIC), box, 336 / 2000)
        tile = _text_contrast(image.resize((1344, 1344), Image.BICUBIC).crop((0, 0, 448, 448)), box, 1344 / 2000)
        assert full > 50
        assert squash < 0.35 * full, (spec["word"], full, squash)
        assert tile > 0.55 * full, (spec["word"], full, tile)
        # Two images that differ only in the word: obvious apart at full res, nearly equal squashed.
        other = render(dict(spec, word="zephyr" if spec["word"] != "zephyr" else "cat"))
        left, t, r, b = box
        diff_full = np.abs(np.asarray(image, float) - np.asarray(other, float))[t:b, left:r].mean()
        a, c = (np.asarray(x.resize((336, 336), Image.BICUBIC), float) for x in (image, other))
        s = 336 / 2000
        diff_squash = np.abs(a - c)[int(t * s): int(b * s) + 1, int(left * s): int(r * s) + 1].mean()
        assert diff_squash < 0.5 * diff_full, (diff_full, diff_squash)
