"""MME official scoring: the worked example and the parser table of docs/mme.md, baselines, layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.benchmarks.mme.scoring import (
    best_threshold,
    held_out_split,
    main,
    mme_table,
    pairwise_accuracy,
    parse_answer,
    read_eval_tool_dir,
    read_predictions,
    score,
    threshold_predictions,
)
from harness.benchmarks.mme.subtasks import COGNITION, PERCEPTION

# Reference §1.1, exact strings and sizes (images per subtask).
SIZES = {
    "existence": 30, "count": 30, "position": 30, "color": 30, "posters": 147, "celebrity": 170, "scene": 200,
    "landmark": 200, "artwork": 200, "OCR": 20, "commonsense_reasoning": 70, "numerical_calculation": 20,
    "text_translation": 20, "code_reasoning": 20,
}


def _example(last: str = "Yes") -> list[dict]:
    table = [("A", "Yes", "Yes"), ("B", "No", last), ("A", "No", "No."), ("B", "Yes", "yes, there is a train")]
    return [{"question_id": f"existence/{img}.jpg", "category": "existence", "answer": gt, "prediction": raw}
            for img, gt, raw in table]


def test_subtask_names_exact():
    assert PERCEPTION + COGNITION == tuple(SIZES)
    assert "OCR" in PERCEPTION and "posters" in PERCEPTION


def test_worked_example():
    result = score(_example())["subtasks"]["existence"]
    assert (result["acc"], result["acc_plus"], result["score"], result["other_num"]) == (75.0, 50.0, 125.0, 0)


def test_worked_example_other_and_not_sure():
    other = score(_example("I think so"))["subtasks"]["existence"]
    assert (other["score"], other["other_num"]) == (125.0, 1)
    fixed = score(_example("Not sure"))["subtasks"]["existence"]
    assert (fixed["acc"], fixed["acc_plus"], fixed["score"]) == (100.0, 100.0, 200.0)


def test_row_order_does_not_matter():
    rows = _example()
    assert score(rows[::-1]) == score(rows) == score(pd.DataFrame(rows))


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("Yes", "yes"), ("No.", "no"), ("yes, there is a train", "yes"), ("Y", "other"), ("n", "other"),
        ("Not sure", "no"), ("None", "no"), ("Nope", "no"), ("There is no dog", "other"), ("I think yes", "other"),
        ("Yes and no", "yes"), ("   No", "other"), ("", "other"),
    ],
)
def test_parser_official_column(raw, parsed):
    assert parse_answer(raw) == parsed


def _full_mme(predict) -> pd.DataFrame:
    rows = []
    for cat, n in SIZES.items():
        for i in range(n):
            for ans in ("No", "Yes") if i % 2 else ("Yes", "No"):
                rows.append({"question_id": f"{cat}/{i:04d}.jpg", "category": cat, "answer": ans,
                             "prediction": predict(cat, i, ans)})
    return pd.DataFrame(rows)


def test_always_yes_baseline():
    frame = _full_mme(lambda cat, i, ans: "Yes")
    assert len(frame) == 2374 and frame["question_id"].nunique() == 1187
    result = score(frame)
    assert all(s["acc"] == 50.0 and s["acc_plus"] == 0.0 and s["score"] == 50.0 for s in result["subtasks"].values())
    assert result["perception"] == pytest.approx(500.0)
    assert result["cognition"] == pytest.approx(200.0)
    assert result["complete"] == {"Perception": True, "Cognition": True}
    assert score(_full_mme(lambda cat, i, ans: ans))["perception"] == pytest.approx(2000.0)
    assert score(_full_mme(lambda cat, i, ans: ans))["cognition"] == pytest.approx(800.0)


def test_bad_input_is_refused():
    rows = _example()
    with pytest.raises(ValueError, match="missing prediction"):
        score([{k: v for k, v in r.items() if k != "prediction"} for r in rows])
    with pytest.raises(ValueError, match="unknown MME categories"):
        score([{**r, "category": "Poster"} for r in rows])
    with pytest.raises(ValueError, match="exactly 2 questions"):
        score(rows[:3])


def test_mme_table_layout():
    table = mme_table({"always-yes": score(_full_mme(lambda c, i, a: "Yes")), "partial": score(_example())})
    assert table.columns.get_level_values(0).unique().tolist() == ["Perception", "Cognition"]
    assert table.columns.tolist()[:10] == [("Perception", n) for n in PERCEPTION]
    assert table.columns.tolist()[10] == ("Perception", "total")
    assert table.columns.tolist()[-1] == ("Cognition", "total")
    assert table.loc["always-yes", ("Perception", "total")] == pytest.approx(500.0)
    assert table.loc["partial", ("Perception", "existence")] == 125.0
    assert np.isnan(table.loc["partial", ("Cognition", "code_reasoning")])


# --- encoder-only baseline --------------------------------------------------------------


def test_best_threshold_and_split():
    assert best_threshold([0.1, 0.2, 0.3, 0.4], ["No", "No", "Yes", "Yes"]) == pytest.approx(0.25)
    ids = [f"x/{i}" for i in range(10)]
    fit = held_out_split(ids, 0.5, seed=3)
    assert len(fit) == 5 and fit == held_out_split(ids[::-1], 0.5, seed=3)


def _similarity_frame(signal: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for cat in ("existence", "OCR"):
        for i in range(40):
            for ans in ("Yes", "No"):
                rows.append({"question_id": f"{cat}/{i}.jpg", "category": cat, "answer": ans,
                             "similarity": 0.2 + (signal if ans == "Yes" else 0.0) + rng.normal(scale=0.01)})
    return pd.DataFrame(rows)


def test_threshold_predictions_scored_officially():
    preds, thresholds = threshold_predictions(_similarity_frame(0.1))
    assert set(thresholds) == {"existence", "OCR"}
    assert preds.groupby("category")["question_id"].nunique().tolist() == [20, 20]  # fitted images left out
    result = score(preds)
    assert result["subtasks"]["existence"]["score"] == 200.0
    weak = score(threshold_predictions(_similarity_frame(0.0))[0])["subtasks"]["existence"]
    assert weak["score"] < 150.0


def test_pairwise_accuracy_is_separate():
    frame = _similarity_frame(0.1)
    assert pairwise_accuracy(frame) == {"existence": 100.0, "OCR": 100.0}
    flipped = frame.assign(similarity=-frame["similarity"])
    assert pairwise_accuracy(flipped) == {"existence": 0.0, "OCR": 0.0}
    tied = frame.assign(similarity=0.5)
    assert pairwise_accuracy(tied)["OCR"] == 0.0


# --- reading predictions and the command line -------------------------------------------


def test_cli_eval_tool_folder_and_table(tmp_path, capsys):
    folder = tmp_path / "Your_Results"
    folder.mkdir()
    lines = ["A.jpg\tIs there a train?\tYes\tYes", "A.jpg\tIs there a bed?\tNo\tNo.",
             "B.jpg\tIs there a car?\tYes\tyes, there is a train", "B.jpg\tIs there a cat?\tNo\tYes"]
    (folder / "existence.txt").write_text("\n".join(lines) + "\n")
    (folder / "OCR.txt").write_text("0001.jpg\tq1\tYes\tYes\n0001.jpg\tq2\tNo\t\n")  # empty answer -> other
    (folder / "notes.txt").write_text("ignored, not a subtask\n")
    csv = tmp_path / "preds.csv"
    pd.DataFrame(_example("Not sure")).to_csv(csv, index=False)
    assert main([str(folder), str(csv), "--out", str(tmp_path / "tables")]) == 0
    printed = capsys.readouterr().out
    assert "existence" in printed and "score  125.00" in printed and "score  200.00" in printed
    table = pd.read_csv(tmp_path / "tables" / "mme.csv").set_index("run")
    assert table.loc[str(folder), "Perception/existence"] == 125.0
    assert table.loc[str(folder), "Perception/OCR"] == 50.0  # acc 50, acc+ 0
    assert table.loc[str(folder), "Perception/total"] == 175.0
    assert table.loc[str(csv), "Perception/total"] == 200.0
    assert "Perception" in (tmp_path / "tables" / "mme.md").read_text()
    assert read_eval_tool_dir(folder)["question_id"].tolist()[:1] == ["OCR/0001.jpg"]


def test_cli_bad_input(tmp_path, capsys):
    (tmp_path / "existence.txt").write_text("A.jpg\tonly three\tYes\n")
    assert main([str(tmp_path)]) == 2
    assert "expected 4 tab-separated fields" in capsys.readouterr().err
    assert main([str(tmp_path / "x.xlsx")]) == 2


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predictions_read_as_text(tmp_path, suffix):
    """`None`, `NA`, `null` are answers the official tool sees as text (`None` parses as `no`),
    never missing values scored `other`; ids stay strings."""
    rows = [("existence/1", "No", "None"), ("existence/1", "Yes", "NA"),
            ("existence/2", "No", "null"), ("existence/2", "No", "nan")]
    path = tmp_path / f"pred{suffix}"
    if suffix == ".csv":
        path.write_text("question_id,category,answer,prediction\n"
                        + "".join(f"{q},existence,{a},{p}\n" for q, a, p in rows))
    else:
        import json

        path.write_text("".join(json.dumps({"question_id": q, "category": "existence", "answer": a,
                                            "prediction": p}) + "\n" for q, a, p in rows))
    frame = read_predictions(path)
    assert list(frame["prediction"]) == ["None", "NA", "null", "nan"]
    result = score(frame)["subtasks"]["existence"]
    # None -> no (right); NA, null, nan -> other (wrong); read as missing, all four were `other`
    assert [parse_answer(p) for _, _, p in rows] == ["no", "other", "other", "other"]
    assert result["acc"] == 25.0 and result["other_num"] == 3
