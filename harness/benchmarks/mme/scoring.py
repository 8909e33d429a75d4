"""MME's official scoring (Fu et al., arXiv:2306.13394; `eval_tool/calculation.py` of
`BradyFU/Awesome-Multimodal-Large-Language-Models`, branch `Evaluation`), its paper-layout
table, and an encoder-only CLIP baseline that produces legitimate MME predictions.

Rows are (question_id, category, answer, prediction); `question_id` names the image (the two
questions of an image share it, as in `lmms-lab/MME`), so pairs are found by grouping on it,
never by row order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.benchmarks.base import FRAME_COLUMNS as REQUIRED
from harness.benchmarks.mme.subtasks import GROUPS, SUBTASKS


def parse_answer(prediction: str) -> str:
    """The official `parse_pred_ans` applied to `pred.lower()` (no strip): the whole string
    `yes`/`no` -> itself; else within the first 4 characters, `yes` -> yes, else `no` -> no;
    else `other` (which is simply wrong)."""
    pred = str(prediction).lower()
    if pred in ("yes", "no"):
        return pred
    head = pred[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def _frame(predictions: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = predictions.copy() if isinstance(predictions, pd.DataFrame) else pd.DataFrame(list(predictions))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"MME predictions need columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    unknown = sorted(set(frame["category"]) - set(SUBTASKS))
    if unknown:
        raise ValueError(f"unknown MME categories {unknown}; valid: {', '.join(SUBTASKS)}")
    gt = frame["answer"].astype(str).str.lower()
    if not gt.isin(["yes", "no"]).all():
        raise ValueError(f"ground-truth answers must be Yes or No; got {sorted(set(frame['answer']) - {'Yes', 'No'})}")
    sizes = frame.groupby(["category", "question_id"]).size()
    if (sizes != 2).any():
        bad = sizes[sizes != 2].index[:5].tolist()
        raise ValueError(f"every question_id must have exactly 2 questions per category; not so for {bad}")
    frame["gt"] = gt
    frame["parsed"] = frame["prediction"].map(parse_answer)
    frame["correct"] = frame["parsed"] == frame["gt"]
    return frame


def score(predictions: pd.DataFrame | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Official MME figures.

    Per subtask: `acc` = 100 * correct / questions; `acc_plus` = 100 * images with both
    questions right / images; `score` = acc + acc_plus (max 200); `other_num` = answers
    parsed as neither yes nor no. Totals: `perception` (sum of the 10 perception subtasks
    present, max 2000) and `cognition` (4 subtasks, max 800). Returns
    `{"subtasks": {name: {...}}, "perception": float, "cognition": float, "total": float,
    "complete": {"Perception": bool, "Cognition": bool}}`.
    """
    frame = _frame(predictions)
    subtasks: dict[str, dict[str, float | int]] = {}
    for name in SUBTASKS:
        rows = frame[frame["category"] == name]
        if rows.empty:
            continue
        per_image = rows.groupby("question_id")["correct"].all()
        acc = 100.0 * float(rows["correct"].mean())
        acc_plus = 100.0 * float(per_image.mean())
        subtasks[name] = {
            "acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus,
            "other_num": int((rows["parsed"] == "other").sum()),
            "n_questions": len(rows), "n_images": int(per_image.size),
        }
    totals = {group.lower(): float(sum(subtasks[s]["score"] for s in names if s in subtasks))
              for group, names in GROUPS.items()}
    return {
        "subtasks": subtasks,
        **totals,
        "total": totals["perception"] + totals["cognition"],
        "complete": {group: all(s in subtasks for s in names) for group, names in GROUPS.items()},
    }


def mme_table(scores: Mapping[str, Mapping[str, Any]], metric: str = "score") -> pd.DataFrame:
    """The paper layout: one row per model/run (keys of `scores`, each a `score()` result),
    columns grouped (Perception | Cognition) with the subtasks in the paper's order and each
    group's total last. Missing subtasks are NaN. `metric` picks score, acc or acc_plus
    (totals are only given for score)."""
    if metric not in ("score", "acc", "acc_plus"):
        raise ValueError(f"metric must be one of score, acc, acc_plus; got {metric!r}")
    columns, rows = [], []
    for group, names in GROUPS.items():
        columns += [(group, n) for n in names]
        if metric == "score":
            columns.append((group, "total"))
    for result in scores.values():
        row = []
        for group, names in GROUPS.items():
            row += [result["subtasks"].get(n, {}).get(metric, np.nan) for n in names]
            if metric == "score":
                row.append(result[group.lower()])
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(scores), name="run"), columns=pd.MultiIndex.from_tuples(columns))


# --- encoder-only baseline (CLIP image-text similarity) ----------------------------------


def held_out_split(question_ids: Sequence[str], fraction: float = 0.5, seed: int = 0) -> set[str]:
    """A deterministic split by image: the set of question_ids whose threshold is *fitted*
    (the rest are scored). Depends only on the ids and `seed`, not on row order."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction}")
    ids = sorted(set(question_ids))
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(ids))[: max(1, round(fraction * len(ids)))]
    return {ids[i] for i in chosen}


def best_threshold(similarities: Sequence[float], answers: Sequence[str]) -> float:
    """The threshold tau maximising accuracy of `yes iff s > tau` on the given questions
    (candidates: midpoints between sorted distinct scores and both ends; ties -> the
    smallest such tau)."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray([str(a).lower() == "yes" for a in answers])
    if s.size == 0:
        raise ValueError("best_threshold needs at least one question")
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
    accs = [np.mean((s > c) == y) for c in cands]
    return float(cands[int(np.argmax(accs))])


def threshold_predictions(
    frame: pd.DataFrame, similarity: str = "similarity", fit_fraction: float = 0.5, seed: int = 0,
    per_subtask: bool = True,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Legitimate MME predictions from image-text similarities: each question is answered
    on its own, `Yes` iff s(q) > tau, with tau chosen (per subtask, or globally) on the images
    of a held-out split (`held_out_split`). Returns the *scored* rows (the fitted images are
    removed, so no threshold sees the image it answers) with a `prediction` column, ready for
    `score`, and the thresholds used."""
    missing = [c for c in ("question_id", "category", "answer", similarity) if c not in frame.columns]
    if missing:
        raise ValueError(f"threshold_predictions needs columns {', '.join(missing)}")
    out = []
    thresholds: dict[str, float] = {}
    groups = frame.groupby("category", sort=False) if per_subtask else [("all", frame)]
    for name, rows in groups:
        fit_ids = held_out_split(rows["question_id"].tolist(), fit_fraction, seed)
        fit = rows["question_id"].isin(fit_ids)
        if fit.all():
            raise ValueError(f"{name}: too few images to hold some out for fitting the threshold")
        tau = best_threshold(rows.loc[fit, similarity], rows.loc[fit, "answer"])
        thresholds[str(name)] = tau
        scored = rows.loc[~fit].copy()
        scored["prediction"] = np.where(scored[similarity] > tau, "Yes", "No")
        out.append(scored)
    return pd.concat(out, ignore_index=True), thresholds


def pairwise_accuracy(frame: pd.DataFrame, similarity: str = "similarity") -> dict[str, float]:
    """Forced choice within each image: the question with the higher similarity is taken as
    the `Yes` one. Exploits MME's construction (one Yes and one No per image), so it is NOT an
    MME score; report it only as "pairwise accuracy" (percent of images right, chance 50;
    a tie counts as wrong, so the result never depends on row order)."""
    result: dict[str, float] = {}
    for name, rows in frame.groupby("category", sort=False):
        right = []
        for _, pair in rows.groupby("question_id"):
            if len(pair) != 2:
                raise ValueError(f"{name}: question_id {pair['question_id'].iloc[0]!r} has {len(pair)} questions")
            is_yes = pair["answer"].astype(str).str.lower().eq("yes").to_numpy()
            sims = pair[similarity].to_numpy(dtype=float)
            right.append(bool(sims[is_yes].max() > sims[~is_yes].max()))  # a tie counts as wrong
        result[str(name)] = 100.0 * float(np.mean(right))
    return result


# --- reading predictions and the command line --------------------------------------------


def read_eval_tool_dir(folder: str | Path) -> pd.DataFrame:
    """Rows from the official eval_tool layout: one `<subtask>.txt` per subtask, lines
    `image_name<TAB>question<TAB>Yes|No<TAB>prediction` (the official tool's input).
    `question_id` becomes `<subtask>/<image_name>`, as in `lmms-lab/MME`. The official tool
    pairs consecutive lines; grouping by image name gives the same pairs for well-formed files
    and the right ones for shuffled files. (Its trailing newline on predictions never changes
    the parse: the first-four-characters rule sees the same text.)"""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.glob("*.txt")):
        if path.stem not in SUBTASKS:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected 4 tab-separated fields, got {len(parts)}")
            image, question, answer, prediction = parts
            rows.append({"question_id": f"{path.stem}/{image}", "category": path.stem, "question": question,
                         "answer": answer, "prediction": prediction})
    if not rows:
        raise ValueError(f"no <subtask>.txt files under {folder}; subtasks: {', '.join(SUBTASKS)}")
    return pd.DataFrame(rows)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Predictions from a Parquet/CSV/JSON-lines file with columns question_id, category,
    answer, prediction, or from an eval_tool folder (see `read_eval_tool_dir`)."""
    path = Path(path)
    if path.is_dir():
        return read_eval_tool_dir(path)
    readers = {".parquet": pd.read_parquet, ".csv": _read_csv_text, ".jsonl": _read_jsonl_text}
    if path.suffix not in readers:
        raise ValueError(f"unknown predictions format {path.suffix!r}; use one of {', '.join(readers)} or a folder")
    return readers[path.suffix](path).fillna({"prediction": ""}).astype({"prediction": str})


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every field as the text in the file: pandas would read `None`, `NA`, `null`, `nan` ... as
    missing (then scored `other`), where the official tool sees the string (`None` parses `no`;
    docs/mme.md, the parser table)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def _read_jsonl_text(path: Path) -> pd.DataFrame:
    """One JSON object per line, values as written: no type or date inference (pandas'
    `read_json` would turn `"1"` into 1 and date-like ids into timestamps). A JSON `null`
    prediction is an empty answer."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not a JSON object: {exc.msg}") from exc
    return pd.DataFrame(rows, dtype=object)


def _markdown(table: pd.DataFrame) -> str:
    """The paper layout as Markdown: one header per column (`Perception: existence`, not a
    tuple), subtasks and a group's total only when something of that group was scored."""
    keep = [(g, s) for g, s in table.columns if table[(g, s)].notna().any()
            and (s != "total" or table[[(g, n) for n in GROUPS[g]]].notna().any().any())]
    shown = table[keep].copy()
    shown.columns = [f"{g} total" if s == "total" else f"{g}: {s}" for g, s in keep]
    return shown.to_markdown(floatfmt=".2f") + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.benchmarks.mme.scoring PRED [PRED ...] [--out DIR]`: official MME scores of each
    predictions file or eval_tool folder, printed per subtask and written in the paper layout
    (`mme.{parquet,csv,md}`) when --out is given."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.mme.scoring", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Official MME scores (BradyFU eval_tool/calculation.py: its yes/no parser, acc, acc+ per image,\n"
                    "Perception and Cognition totals) of each predictions file or eval_tool results folder, printed\n"
                    "per subtask and, with --out, written in the paper layout as mme.parquet, mme.csv and mme.md.\n\n"
                    "A predictions file (.parquet, .csv, .jsonl) has one row per question with the columns\n"
                    "question_id (the image, shared by its two questions), category (the subtask), answer (Yes/No)\n"
                    "and prediction (the model's raw answer); an eval_tool folder holds one <subtask>.txt per subtask\n"
                    "(image, question, answer, prediction, tab-separated). Rules: docs/mme.md.")
    parser.add_argument("predictions", nargs="+", help="predictions file (.parquet/.csv/.jsonl) or eval_tool folder")
    parser.add_argument("--out", help="folder for mme.parquet / mme.csv / mme.md")
    args = parser.parse_args(argv)
    try:
        results = {str(p): score(read_predictions(p)) for p in args.predictions}
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, result in results.items():
        print(f"== {name}")
        for group, names in GROUPS.items():
            note = "" if result["complete"][group] else " (incomplete)"
            print(f"{group} total: {result[group.lower()]:.2f}{note}")
            for sub in names:
                if sub in result["subtasks"]:
                    s = result["subtasks"][sub]
                    print(f"  {sub:<24} score {s['score']:7.2f}  acc {s['acc']:6.2f}  acc+ {s['acc_plus']:6.2f}"
                          f"  other {s['other_num']}")
    if args.out:
        table = mme_table(results)
        flat = table.copy()
        flat.columns = [f"{g}/{s}" for g, s in table.columns]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        flat.reset_index().to_parquet(out / "mme.parquet", index=False)
        flat.reset_index().to_csv(out / "mme.csv", index=False)
        (out / "mme.md").write_text(_markdown(table))
        print(f"tables: {out / 'mme.parquet'}, {out / 'mme.csv'}, {out / 'mme.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
