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


# --- TextVQA (lmms-lab/textvqa, split validation) ---------------------------------------------


def textvqa_rows() -> list[dict[str, Any]]:
    """Two images, three questions about the first and one about the second, 10 answers each."""
    rows = []
    for n, (image_id, answers) in enumerate([("a1", ["stop"] * 7 + ["stop sign"] * 3), ("a1", ["12"] * 10),
                                             ("a1", ["coca cola"] * 4 + ["coke"] * 6), ("b2", ["yes"] * 10)]):
        w = 40 if image_id == "a1" else 24
        rows.append({
            "image_id": image_id, "question_id": 100 + n, "question": f"what does sign {n} say?",
            "question_tokens": ["what", "does"], "image": {"bytes": png((w, 20), (n * 40, 10, 10)), "path": None},
            "image_width": w, "image_height": 20, "flickr_original_url": "", "flickr_300k_url": "",
            "answers": answers, "image_classes": ["Sign"], "set_name": "val", "ocr_tokens": ["stop", str(n)],
        })
    for r in rows:  # questions about one image show the same bytes
        r["image"] = next(x["image"] for x in rows if x["image_id"] == r["image_id"])
    return rows


def write_textvqa_parquet(root: Path) -> Path:
    import datasets

    s, seq = datasets.Value("string"), datasets.Sequence(datasets.Value("string"))
    i = datasets.Value("int64")
    features = {"image_id": s, "question_id": i, "question": s, "question_tokens": seq, "image": datasets.Image(),
                "image_width": i, "image_height": i, "flickr_original_url": s, "flickr_300k_url": s, "answers": seq,
                "image_classes": seq, "set_name": s, "ocr_tokens": seq}
    return write_hub_parquet(root, "validation", features, textvqa_rows())


def write_textvqa_release(root: Path) -> Path:
    (root / "train_images").mkdir(parents=True)
    data = []
    for r in textvqa_rows():
        (root / "train_images" / f"{r['image_id']}.jpg").write_bytes(r["image"]["bytes"])
        data.append({k: v for k, v in r.items() if k not in ("image", "ocr_tokens")})
    path = root / "TextVQA_0.5.1_val.json"
    path.write_text(json.dumps({"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1",
                                "data": data}))
    return path


# --- DocVQA (lmms-lab/DocVQA, config DocVQA, split validation) --------------------------------


def docvqa_rows() -> list[dict[str, Any]]:
    pages = {("pybv0228", "81"): png((30, 40), (250, 250, 250)), ("nkbl0226", "1"): png((32, 44), (200, 200, 200))}
    rows = []
    for n, ((doc, page), answers) in enumerate([(("pybv0228", "81"), ["1/8/93", "January 8, 1993"]),
                                                 (("nkbl0226", "1"), ["Dr. Smith"]),
                                                 (("pybv0228", "81"), ["ITC"])]):
        rows.append({"questionId": str(49150 + n), "question": f"What is field {n}?",
                     "question_types": ["handwritten"], "image": {"bytes": pages[doc, page], "path": None},
                     "docId": 14000 + n, "ucsf_document_id": doc, "ucsf_document_page_no": page,
                     "answers": answers, "data_split": "val"})
    return rows


def write_docvqa_parquet(root: Path) -> Path:
    import datasets

    s, seq = datasets.Value("string"), datasets.Sequence(datasets.Value("string"))
    features = {"questionId": s, "question": s, "question_types": seq, "image": datasets.Image(),
                "docId": datasets.Value("int64"), "ucsf_document_id": s, "ucsf_document_page_no": s, "answers": seq,
                "data_split": s}
    folder = write_hub_parquet(root, "validation", features, docvqa_rows())
    (folder / "data").rename(folder / "DocVQA")  # the hub's layout: one folder per config
    return folder


def write_docvqa_release(root: Path) -> Path:
    (root / "documents").mkdir(parents=True)
    data = []
    for r in docvqa_rows():
        name = f"documents/{r['ucsf_document_id']}_{r['ucsf_document_page_no']}.png"
        (root / name).write_bytes(r["image"]["bytes"])
        data.append({**{k: v for k, v in r.items() if k != "image"}, "image": name})
    path = root / "val_v1.0.json"
    path.write_text(json.dumps({"dataset_name": "docvqa", "dataset_split": "val", "data": data}))
    return path


# --- ChartQA (lmms-lab/ChartQA, split test) ---------------------------------------------------


def chartqa_rows() -> list[dict[str, Any]]:
    charts = [png((36, 24), (255, 0, 0)), png((36, 24), (0, 255, 0)), png((20, 30), (0, 0, 255))]
    spec = [("human_test", 0, "What is the max?", "41"), ("human_test", 0, "Which is red?", "Yes"),
            ("human_test", 1, "How many bars?", "3"), ("augmented_test", 2, "What is the value?", "12.5%")]
    return [{"type": t, "question": q, "answer": a, "image": {"bytes": charts[c], "path": None}}
            for t, c, q, a in spec]


def write_chartqa_parquet(root: Path) -> Path:
    import datasets

    s = datasets.Value("string")
    return write_hub_parquet(root, "test", {"type": s, "question": s, "answer": s, "image": datasets.Image()},
                             chartqa_rows())


def write_chartqa_release(root: Path) -> Path:
    (root / "png").mkdir(parents=True)
    files: dict[str, list[dict[str, str]]] = {"test_human.json": [], "test_augmented.json": []}
    names: dict[bytes, str] = {}
    for r in chartqa_rows():
        data = r["image"]["bytes"]
        name = names.setdefault(data, f"{len(names) + 100}.png")
        (root / "png" / name).write_bytes(data)
        key = "test_human.json" if r["type"] == "human_test" else "test_augmented.json"
        files[key].append({"imgname": name, "query": r["question"], "label": r["answer"]})
    (root / "test_human.json").write_text(json.dumps(files["test_human.json"]))
    (root / "test_augmented.json").write_text(json.dumps({"data": files["test_augmented.json"]}))  # both forms
    return root


# --- MMBench (lmms-lab/MMBench, config en, split dev) -----------------------------------------

MMBENCH_COLUMNS = ("index", "question", "hint", "answer", "A", "B", "C", "D", "category", "image", "source",
                   "L2-category", "comment", "split")


def mmbench_rows(copies: bool = True) -> list[dict[str, Any]]:
    """Two questions (4 and 2 options); with `copies`, their circular copies as VLMEvalKit writes
    them (index k * 1e6 + i, options rotated k times, the answer's letter moved with it)."""
    base = [(0, "What colour is the cat?", "nan", ["red", "green", "blue", "black"], "D"),
            (1, "Is the sky above?", "Look up.", ["yes", "no"], "A")]
    rows = []
    for index, question, hint, options, answer in base:
        image = png((24 + index * 8, 24), (index * 100, 50, 50))
        n = len(options)
        for k in range(n if copies else 1):
            rotated = options[k:] + options[:k]
            letter = "ABCD"[rotated.index(options["ABCD".index(answer)])]
            row = {"index": k * 1_000_000 + index, "question": question, "hint": hint, "answer": letter,
                   "category": "attribute_recognition", "image": {"bytes": image, "path": None},
                   "source": "MMBench", "L2-category": "finegrained_perception", "comment": "nan", "split": "dev"}
            row.update({c: (rotated["ABCD".index(c)] if "ABCD".index(c) < n else "nan") for c in "ABCD"})
            rows.append(row)
    return rows


def write_mmbench_parquet(root: Path, copies: bool = True) -> Path:
    import datasets

    s = datasets.Value("string")
    features = {c: s for c in MMBENCH_COLUMNS}
    features.update(index=datasets.Value("int64"), image=datasets.Image())
    folder = write_hub_parquet(root, "dev", features, mmbench_rows(copies))
    (folder / "data").rename(folder / "en")
    return folder


def write_mmbench_tsv(path: Path) -> Path:
    """The release TSV: images base64, a copy's image the index of its original."""
    import base64

    import pandas as pd

    rows = []
    for r in mmbench_rows():
        original = r["index"] < 1_000_000
        image = base64.b64encode(r["image"]["bytes"]).decode() if original else str(r["index"] % 1_000_000)
        rows.append({**r, "image": image})
    pd.DataFrame(rows, columns=list(MMBENCH_COLUMNS)).to_csv(path, sep="\t", index=False)
    return path
