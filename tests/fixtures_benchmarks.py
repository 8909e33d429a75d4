"""Hub-format parquet fixtures of the benchmarks, written at test time in the exact schema of
the hub copies (column names and `datasets` feature types), plus their release-file twins."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def write_hub_parquet(root: Path, split: str, features: dict[str, Any], rows: list[dict[str, Any]],
                      shards: int = 2, rows_per_group: int = 3) -> Path:
    """`root/data/<split>-0000k-of-0000n.parquet` as the hub stores a dataset (features as given)."""
    import datasets

    feats = datasets.Features(features)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        part = rows[s::shards]
        cols = {k: [r[k] for r in part] for k in feats}
        datasets.Dataset.from_dict(cols, features=feats).to_parquet(
            str(root / "data" / f"{split}-{s:05d}-of-{shards:05d}.parquet"), batch_size=rows_per_group)
    return root


# --- POPE (lmms-lab/POPE, split test) -----------------------------------------------------------

POPE_OBJECTS = ("dog", "cat", "car", "tv", "bus", "cup")


def pope_rows() -> list[dict[str, Any]]:
    """Three COCO-like images, six questions each split over two settings (ids restart per
    setting, as in the release files), answers alternating yes/no."""
    rows = []
    counters = {"adversarial": 0, "popular": 0, "random": 0}
    for k in range(3):
        source = f"COCO_val2014_{k:012d}"
        for j, obj in enumerate(POPE_OBJECTS):
            category = ("random", "adversarial", "popular")[(k + j) % 3] if j % 2 else "random"
            counters[category] += 1
            rows.append({
                "id": str(len(rows)), "question_id": str(counters[category]),
                "question": f"Is there a {obj} in the image?", "answer": "yes" if j % 2 == 0 else "no",
                "image_source": source, "image": {"bytes": png((40 + 8 * k, 30), (50 * k, 90, 200)), "path": None},
                "category": category,
            })
    return rows


def write_pope_parquet(root: Path) -> Path:
    import datasets

    s = datasets.Value("string")
    features = {"id": s, "question_id": s, "question": s, "answer": s, "image_source": s,
                "image": datasets.Image(), "category": s}
    return write_hub_parquet(root, "test", features, pope_rows())


def write_pope_release(root: Path) -> tuple[Path, Path]:
    """The release's coco_pope_<setting>.json (JSON lines) and a folder of the images."""
    images = root / "val2014"
    images.mkdir(parents=True)
    lines: dict[str, list[str]] = {}
    for r in pope_rows():
        name = r["image_source"] + ".jpg"
        if not (images / name).exists():
            (images / name).write_bytes(r["image"]["bytes"])
        lines.setdefault(r["category"], []).append(json.dumps(
            {"question_id": int(r["question_id"]), "image": name, "image_id": 0, "text": r["question"],
             "label": r["answer"]}))
    for category, ls in lines.items():
        (root / f"coco_pope_{category}.json").write_text("\n".join(ls) + "\n")
    return root, images
