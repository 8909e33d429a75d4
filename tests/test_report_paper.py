"""Tables and figures a paper can take as they are (issue 25) and reports that cost a damaged
run its own rows only (issue 22, item 5): labels that tell every configuration apart, numbers as
numbers, no text cut off or printed over other text, one line for a report that cannot write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.mme.scoring import main as mme_main
from harness.pipeline.identity import new_run_id
from harness.pipeline.store import RunStore
from harness.reporting import style
from harness.reporting.figures import (
    cka_heatmap,
    config_labels,
    latency_vs_tokens,
    memory_vs_views,
    metric_header,
    mme_bars,
    natural_key,
    quality_vs_tokens,
    tokens_vs_aspect,
)
from harness.reporting.paper import MAX_COLUMNS, paper_table, significant
from harness.types import Record


@pytest.fixture(autouse=True)
def _style() -> None:
    style.apply()


# --- the text checker itself --------------------------------------------------------------------


def test_text_problems_finds_overlap_and_text_outside_the_figure() -> None:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
    fig.text(0.95, 0.5, "a caption that runs off the page")
    problems = style.text_problems(fig)
    plt.close(fig)
    assert any("'first label' overlaps 'second label'" in p for p in problems)
    assert any("runs off the page" in p and "leaves the figure" in p for p in problems)


def test_text_problems_sees_slanted_labels_side_by_side_as_apart() -> None:
    """Labels rotated 45 degrees whose upright boxes overlap but whose letters do not."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xticks(range(4), [f"a rather long label {i}" for i in range(4)], rotation=45, ha="right")
    fig.tight_layout()
    assert style.text_problems(fig) == []
    ax.set_xticks(range(4), [f"a rather long label {i}" for i in range(4)], rotation=0)
    fig.tight_layout()
    assert any("overlaps" in p for p in style.text_problems(fig))  # upright, they collide
    plt.close(fig)


def test_declutter_moves_point_labels_apart_or_leaves_them_out() -> None:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 1.001, 1.002], [1, 1.001, 1.002], marker="o")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    for i, x in enumerate([1, 1.001, 1.002]):
        ax.annotate(f"max_tiles={i}", (x, x), textcoords="offset points", xytext=(3, 3), fontsize=5,
                    gid=style.POINT_LABEL)
    fig.tight_layout()
    assert any("overlaps" in p for p in style.text_problems(fig))
    style.declutter(fig)
    assert style.text_problems(fig) == []
    plt.close(fig)


# --- a study table with everything that makes figures hard ---------------------------------------


def _study_table() -> pd.DataFrame:
    """Two encoders; a max_tiles sweep 1..12 and a num_crops sweep 1..16 (one line each); CLIP
    center_crop with and without reductions (the same strategy, different tokens); Qwen budgets
    in the millions of pixels; two kNN metrics; long labels."""
    rows = []

    def add(encoder: str, strategy: str, tokens: float, latency: float, **extra: object) -> None:
        k = len(rows)
        rows.append({"study": "s", "config_hash": f"{k:012x}", "run_id": f"run{k}", "status": "ok",
                     "encoder": encoder, "encoder_size": "tiny", "weights": "random", "strategy": strategy,
                     "dataset": "synthetic", "device": "cpu", "dtype": "float32", "seed": 0,
                     "visual_tokens_mean": tokens, "encode_p50_ms": latency, "encode_p25_ms": latency,
                     "encode_p75_ms": latency, "views_total": 8.0 * (1 + k % 5), "n_images": 8, "n_ok": 8,
                     "peak_rss_mb": 500.0 + k, "metric:knn_accuracy_k10": 0.5 + 0.01 * k,
                     "metric:knn_accuracy_k20": 0.4 + 0.01 * k, **extra})

    for t in range(1, 13):
        add("internvit_300m", "internvl_dynamic", 256.0 * (t + (t > 1)), 10.0 + t, pp_max_tiles=t)
    for c in range(1, 17):
        add("phi3_vision", "phi3_hd", 144.0 * (c + 1) + 13, 20.0 + c, pp_num_crops=c)
    add("clip_vit_l14_336", "center_crop", 576.0, 9.0)
    for keep in (64, 128, 192):
        add("clip_vit_l14_336", "center_crop", float(keep), 9.5, reduce="cls_topk", rd_keep=keep)
        add("clip_vit_l14_336", "center_crop", float(keep), 9.7, reduce="uniform", rd_keep=keep)
    for pixels in (200704, 1003520):
        add("qwen2_5_vl_vit", "qwen_native", pixels / 784, 30.0, pp_max_pixels=pixels)
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[str]]:
    """Each saved figure's text problems, checked as `style.save` leaves it."""
    problems: dict[str, list[str]] = {}
    save = style.save

    def checking_save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
        style.plain_ticks(fig)
        style.declutter(fig)
        problems[stem] = style.text_problems(fig)
        problems[stem + ":legend"] = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        return save(fig, out_dir, stem)

    monkeypatch.setattr(style, "save", checking_save)
    return problems


def test_every_generic_figure_has_clean_text(drawn: dict[str, list[str]], tmp_path: Path) -> None:
    table = _study_table()
    assert latency_vs_tokens(table, tmp_path) and memory_vs_views(table, tmp_path)
    assert quality_vs_tokens(table, tmp_path)
    mme = pd.DataFrame([{"run_id": r, "category": c, "score": 100.0 + i}
                        for r in table["run_id"][:3] for i, c in enumerate(["existence", "count", "OCR", "posters"])])
    assert mme_bars(mme, tmp_path, table)
    compare = pd.DataFrame([{"run_a": a, "run_b": b, "linear_cka": 0.5}
                            for i, a in enumerate(table["run_id"][:8]) for b in table["run_id"][i + 1:8]])
    assert cka_heatmap(compare, table, tmp_path)
    atlas = pd.DataFrame([{"encoder": e, "strategy": s, "strategy_params": json.dumps(p), "aspect_ratio": a,
                           "tokens_median": 100.0 * a, "tokens_min": 90.0 * a, "tokens_max": 110.0 * a}
                          for e in ("clip_vit_l14_336", "internvit_300m", "phi3_vision")
                          for s, p in (("internvl_dynamic", {"max_tiles": 12}), ("resize", {}))
                          for a in (0.125, 0.5, 1.0, 2.0, 8.0)])
    assert tokens_vs_aspect(atlas, tmp_path)
    figures = [k for k in drawn if not k.endswith(":legend")]
    assert len(figures) == 6
    for stem in figures:
        assert drawn[stem] == [], f"{stem}: {drawn[stem]}"


def test_every_configuration_has_its_own_label_and_look(drawn: dict[str, list[str]], tmp_path: Path) -> None:
    """CLIP center_crop with 576 tokens and with 64 (cls_topk) no longer read alike; each line
    of the latency figure has its own colour, marker and dash; a sweep is one labelled line."""
    table = _study_table()
    labels = config_labels(table)
    assert labels.is_unique
    assert "clip_vit_l14_336 / center_crop (reduce=cls_topk, keep=64)" in set(labels)
    assert "clip_vit_l14_336 / center_crop" in set(labels)
    assert not any("#" in lab for lab in labels)  # told apart by what varies, not by a hash
    fig_lines = []
    real_plot = plt.Axes.plot

    def spy(ax: plt.Axes, *args: object, **kwargs: object) -> object:
        fig_lines.append((kwargs.get("color"), kwargs.get("marker"), kwargs.get("linestyle"), kwargs.get("label")))
        return real_plot(ax, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        latency_vs_tokens(table, tmp_path)
    finally:
        plt.Axes.plot = real_plot
    looks = [(tuple(c), m, s) for c, m, s, _ in fig_lines]
    assert len(set(looks)) == len(looks)
    names = [lab for *_, lab in fig_lines]
    assert any(n.startswith("internvit_300m / internvl_dynamic [points: max_tiles]") for n in names)
    legend = drawn["latency_vs_tokens:legend"]
    assert len(legend) == len(set(legend)) == len(fig_lines)


def test_numbers_read_as_numbers() -> None:
    assert style.number_text(1003520) == "1,003,520" and style.number_text(1003520.0) == "1,003,520"
    assert style.number_text(0.123456) == "0.1235"
    assert significant(1003520.4) == "1,003,520" and significant(9.374) == "9.37"
    assert sorted(["max_tiles=12", "max_tiles=2", "max_tiles=1"], key=natural_key) == \
        ["max_tiles=1", "max_tiles=2", "max_tiles=12"]
    assert metric_header("metric:knn_accuracy_k10") == "kNN@10 acc."
    assert metric_header("metric:knn_accuracy_k20") == "kNN@20 acc."
    assert metric_header("metric:rankme") == "RankMe" and metric_header("metric:mme_cognition") == "MME cognition"
    labels = config_labels(_study_table())
    assert "qwen2_5_vl_vit / qwen_native (max_pixels=1,003,520)" in set(labels)


def test_paper_table_fits_a_page_and_says_what_it_shows() -> None:
    table = _study_table().assign(weights="/home/me/checkpoints/clip", **{"dataset": "synthetic"})
    tex = paper_table(table, "s")
    for tabular in tex.split(r"\begin{tabular}{")[1:]:
        assert len(tabular.split("}", 1)[0]) <= MAX_COLUMNS
    assert "kNN@10 acc." in tex and "kNN@20 acc." in tex
    assert "/home/me" not in tex
    assert "1,003,520" in tex and "e+06" not in tex
    assert "p25--p75" not in tex  # one timed batch per run: no spread to show
    assert "cls\\_topk (keep=64)" in tex  # the reduction and its budget in one column


def test_markdown_tables_print_integers_in_full(tmp_path: Path) -> None:
    table = pd.DataFrame({"pp_max_pixels": [200704, 1003520], "encode_p50_ms": [1.23456, 12345.0]})
    report.write_tables(table, tmp_path, "t")
    text = (tmp_path / "t.md").read_text()
    assert "1,003,520" in text and "e+06" not in text and "12,345" in text


def test_mme_markdown_has_plain_headers_and_no_empty_total(tmp_path: Path) -> None:
    rows = [{"question_id": f"existence/{i}.jpg", "category": "existence", "answer": a, "prediction": a}
            for i in range(2) for a in ("Yes", "No")]
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    assert mme_main([str(tmp_path / "p.parquet"), "--out", str(tmp_path)]) == 0
    header = (tmp_path / "mme.md").read_text().splitlines()[0]
    assert "Perception: existence" in header and "Perception total" in header
    assert "(" not in header and "Cognition" not in header


@pytest.mark.parametrize("module", ["harness.atlas", "harness.mme.scoring"])
def test_help_describes_the_command(module: str) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.returncode == 0
    assert len(out.stdout.split("options:")[0].split()) > 40  # a description, not one cut-off line


# --- reports that cost a damaged run its own rows only (issue 22, item 5) -------------------------


def _run(runs: Path, study: str, chash: str, *, folder_study: str | None = None, values: dict | None = None,
         run_row: bool = True) -> Path:
    run_id = new_run_id(chash)
    ident = {"run_id": run_id, "study": study, "config_hash": chash, "encoder": "clip_vit_l14_336",
             "encoder_size": "tiny", "weights": "random", "strategy": "resize", "strategy_params": "{}",
             "dataset": "synthetic", "dataset_params": "{}", "device": "cpu", "dtype": "float32", "seed": 0}
    recs = [Record("image", ident, image_id=f"i{k}", values={"visual_tokens": 576.0}) for k in range(3)]
    if run_row:
        recs.append(Record("run", ident, values={"n_images": 3, "n_ok": 3, "n_errors": 0, "visual_tokens_mean": 576.0,
                                                 "views_total": 3, "encode_p50_ms": 5.0, **(values or {})}))
    run_dir = runs / (folder_study or study) / run_id
    ids = [f"i{k}" for k in range(3)]
    RunStore(run_dir).write(recs, {"study": study}, (ids, np.eye(3, 4, dtype=np.float32)))
    return run_dir


def test_odd_run_folders_cost_their_own_rows_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    good = [_run(runs, "s", f"{i:012x}") for i in range(2)]
    other = _run(runs, "t", "000000000010")
    odd = {
        "typed": _run(runs, "s", "bad000000001", values={"visual_tokens_mean": "many"}),
        "no run row": _run(runs, "s", "bad000000002", run_row=False),
        "other study": _run(runs, "x", "bad000000003", folder_study="s"),
        "unsafe": _run(runs, "../up", "bad000000004", folder_study="s"),
    }
    assert report.main([str(runs), "--out", str(tmp_path), "--tables-only"]) == 0
    err = capsys.readouterr().err
    for why, folder in odd.items():
        assert str(folder) in err, why
    tables = tmp_path / "tables"
    assert sorted(pd.read_parquet(tables / "s.parquet")["run_dir"]) == sorted(map(str, good))
    assert list(pd.read_parquet(tables / "t.parquet")["run_dir"]) == [str(other)]
    summary = pd.read_parquet(tables / "summary.parquet")
    assert sorted(summary["run_dir"]) == sorted(map(str, [*good, other]))
    assert not (tables / "x.parquet").exists() and not list(tmp_path.glob("up*"))


def test_a_study_name_too_long_for_the_file_system_costs_its_own_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    good = _run(runs, "s", "000000000001")
    long = "L" * 230  # a folder name the file system takes, table names (`.<name>_compare...part`) it does not
    _run(runs, long, "000000000002")
    assert report.main([str(runs), "--out", str(tmp_path), "--tables-only"]) == 0
    assert list(pd.read_parquet(tmp_path / "tables" / "summary.parquet")["run_dir"]) == [str(good)]
    assert "L" * 40 in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _run(runs, "s", "000000000001")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert report.main([str(runs), "--out", str(out), "--tables-only"]) == 1
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write the report") and "Traceback" not in err[0]


def test_an_output_folder_blocked_by_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Where the tables folder should go there is a file: the same one line, exit 1, and the
    file is left as it was (this one holds as root too, where read-only folders do not)."""
    runs = tmp_path / "runs"
    _run(runs, "s", "000000000001")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tables").write_text("not a folder")
    assert report.main([str(runs), "--out", str(out), "--tables-only"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write the report") and "Traceback" not in err[0]
    assert (out / "tables").read_text() == "not a folder"


def test_a_full_output_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills while tables are written (ENOSPC from the writer): one line, exit 1."""
    runs = tmp_path / "runs"
    _run(runs, "s", "000000000001")

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "tables" / "s.parquet"))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    assert report.main([str(runs), "--out", str(tmp_path), "--tables-only"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot write the report") and "No space left" in err[-1]
    assert "Traceback" not in "\n".join(err)
