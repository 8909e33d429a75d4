"""Reports that survive damage and never mix configurations: runs written by the store from
test-made records (no model), then damaged, relabelled or spread over several folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.pipeline.identity import new_run_id
from harness.pipeline.store import RECORDS, RunStore
from harness.types import Record


def fake_run(
    runs: Path, study: str, chash: str, *, encoder: str = "clip_vit_l14_336", strategy: str = "resize",
    pp: dict | None = None, dataset_params: dict | None = None, tokens: float = 576.0, latency: float = 10.0,
    n: int = 6, seed: int = 0, values: dict | None = None,
) -> Path:
    """A complete run folder as `RunStore.write` leaves it: image rows, one run row, embeddings."""
    pp = pp or {}
    run_id = new_run_id(chash)
    ident = {"run_id": run_id, "study": study, "config_hash": chash, "encoder": encoder, "encoder_size": "tiny",
             "weights": "random", "strategy": strategy, "strategy_params": json.dumps(pp, sort_keys=True),
             "dataset": "synthetic", "dataset_params": json.dumps(dataset_params or {"num_images": n}),
             "device": "cpu", "dtype": "float32", "seed": seed, "batch_views": 8,
             **{f"pp_{k}": v for k, v in pp.items()}}
    ids = [f"img{i}" for i in range(n)]
    recs = [Record("image", ident, image_id=i, values={"visual_tokens": tokens}) for i in ids]
    recs.append(Record("run", ident, values={"n_images": n, "n_ok": n, "n_errors": 0, "visual_tokens_mean": tokens,
                                             "views_total": n, "encode_p50_ms": latency, **(values or {})}))
    rng = np.random.default_rng(abs(hash(chash)) % 2**32)
    run_dir = runs / study / run_id
    RunStore(run_dir).write(recs, {"study": study}, (ids, rng.normal(size=(n, 4)).astype(np.float32)))
    return run_dir


def test_damaged_runs_are_skipped_naming_their_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated records.parquet and a garbage embeddings.npz each cost their own run only:
    one line names each folder, every other table (study, compare, summary) is built."""
    runs = tmp_path / "runs"
    good = [fake_run(runs, "s", f"{i:012x}", tokens=100.0 * (i + 1)) for i in range(3)]
    truncated = fake_run(runs, "s", "bad000000001")
    garbage = fake_run(runs, "s", "bad000000002")
    data = (truncated / RECORDS).read_bytes()
    (truncated / RECORDS).write_bytes(data[: len(data) // 2])
    (garbage / "embeddings.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    assert report.main([str(runs), "--out", str(tmp_path), "--tables-only"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "damaged" in line]
    assert len(lines) == 2
    assert any(str(truncated) in line and RECORDS in line for line in lines)
    assert any(str(garbage) in line and "embeddings.npz" in line for line in lines)
    table = pd.read_parquet(tmp_path / "tables" / "s.parquet")
    assert sorted(table["run_dir"]) == sorted(map(str, good))
    compare = pd.read_parquet(tmp_path / "tables" / "s_compare.parquet")
    assert len(compare) == 3  # the three good runs, pairwise
    assert len(pd.read_parquet(tmp_path / "tables" / "summary.parquet")) == 3


def test_report_writes_next_to_the_runs_and_keeps_other_studies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness-report /other/runs/s1` from anywhere writes /other/tables (not ./results), and the
    cross-study tables still hold every study of /other/runs."""
    runs = tmp_path / "other" / "runs"
    a = [fake_run(runs, "s1", f"a{i:011x}") for i in range(2)]
    b = fake_run(runs, "s2", "b00000000000")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert report.main([str(runs / "s1"), "--tables-only"]) == 0
    tables = tmp_path / "other" / "tables"
    assert (tables / "s1.parquet").exists() and not (tables / "s2.parquet").exists()
    assert not (cwd / "results").exists()
    summary = pd.read_parquet(tables / "summary.parquet")
    assert sorted(summary["run_dir"]) == sorted(map(str, [*a, b]))
    assert sorted(summary["study"].unique()) == ["s1", "s2"]
    assert report.main([str(runs / "s1"), str(tmp_path), "--tables-only"]) == 2  # two places: --out needed


def test_tables_are_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, "s", "c00000000000")
    assert report.main([str(runs), "--tables-only"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    fake_run(runs, "s", "c00000000001")

    def broken(*args: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report, "to_latex", broken)
    assert report.main([str(runs), "--tables-only"]) == 1  # one line, no traceback (issue 22, item 5)
    assert "disk full" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    assert after == before  # no half-new study table, no .part file


def _study_table(tmp_path: Path, runs_spec: list[dict]) -> pd.DataFrame:
    runs = tmp_path / "runs"
    for i, spec in enumerate(runs_spec):
        fake_run(runs, "s", f"{i:012x}", **spec)
    assert report.main([str(runs), "--tables-only"]) == 0
    return pd.read_parquet(tmp_path / "tables" / "s.parquet")


def _drawn(monkeypatch: pytest.MonkeyPatch, draw, *args) -> list:
    """The lines (label, x, y) a figure function draws."""
    from harness.reporting import figures as report_figures

    captured = []
    monkeypatch.setattr(report_figures.style, "save", lambda fig, out, stem: captured.append(fig) or [])
    draw(*args, Path("unused"))
    (fig,) = captured
    return [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].get_lines()]


def test_labels_name_what_varies_and_lines_never_join_configurations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's `dataset.num_images=8` run next to 24-image runs: its own label and its own
    line; a budget sweep is one line whose points say their budget."""
    from harness.reporting.figures import config_labels, latency_vs_tokens

    table = _study_table(tmp_path, [
        {"encoder": "clip_vit_l14_336", "n": 24, "tokens": 576, "latency": 10.0},
        {"encoder": "clip_vit_l14_336", "n": 8, "tokens": 576, "latency": 50.0},
        {"encoder": "internvit_300m", "strategy": "internvl_dynamic", "pp": {"max_tiles": 1}, "n": 24, "tokens": 256},
        {"encoder": "internvit_300m", "strategy": "internvl_dynamic", "pp": {"max_tiles": 6}, "n": 24, "tokens": 1792},
    ])
    labels = list(config_labels(table))
    assert len(set(labels)) == 4
    assert "clip_vit_l14_336 / resize (dataset.num_images=8)" in labels
    assert "clip_vit_l14_336 / resize (dataset.num_images=24)" in labels
    assert any("max_tiles=6" in label for label in labels)
    lines = _drawn(monkeypatch, latency_vs_tokens, table)
    clip = [line for line in lines if line[0].startswith("clip")]
    assert sorted((label, y) for label, _, y in clip) == [
        ("clip_vit_l14_336 / resize (dataset.num_images=24)", [10.0]),
        ("clip_vit_l14_336 / resize (dataset.num_images=8)", [50.0])]
    (intern,) = [line for line in lines if line[0].startswith("internvit")]
    assert intern[1] == [256, 1792]  # one budget series, points in token order


def test_configurations_that_read_alike_get_their_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two configurations differing in nothing a label shows (an identity column outside the
    label fields) never share a label, nor a line."""
    from harness.reporting.figures import config_labels, latency_vs_tokens

    table = _study_table(tmp_path, [{"values": {"extra": 1}}, {"values": {"extra": 2}, "latency": 20.0}])
    labels = list(config_labels(table))
    assert len(set(labels)) == 2 and all(" #" in label for label in labels)
    lines = _drawn(monkeypatch, latency_vs_tokens, table)
    assert sorted((label, y) for label, _, y in lines) == sorted(zip(labels, [[10.0], [20.0]], strict=True))


def test_report_flags_runs_timed_under_load_and_draws_the_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.reporting.figures import latency_vs_tokens

    spread = {"encode_p25_ms": 8.0, "encode_p75_ms": 13.0}
    table = _study_table(tmp_path, [{"values": {**spread, "timed_under_load": False}},
                                    {"encoder": "internvit_300m", "latency": 40.0,
                                     "values": {"encode_p25_ms": 30.0, "encode_p75_ms": 70.0,
                                                "timed_under_load": True}}])
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "under load" in x]
    assert "1 configuration(s)" in line and "internvit_300m" in line and "clip" not in line
    assert {"encode_p25_ms", "encode_p75_ms", "timed_under_load"} <= set(table.columns)
    from harness.reporting import figures as report_figures

    captured = []
    monkeypatch.setattr(report_figures.style, "save", lambda fig, out, stem: captured.append(fig) or [])
    latency_vs_tokens(table, Path("unused"))
    bars = [c for c in captured[0].axes[0].collections if c.__class__.__name__ == "LineCollection"]
    segments = sorted(tuple(seg[:, 1]) for bar in bars for seg in bar.get_segments())
    assert segments == [(8.0, 13.0), (30.0, 70.0)]  # p25-p75 error bars


def test_significant_figures_hand_worked() -> None:
    from harness.reporting.paper import significant

    assert [significant(v) for v in (1234.5, 163.84, 9.374, 0.012345, 576.0, 0, float("nan"), "ok")] == [
        "1,234", "164", "9.37", "0.0123", "576", "0", "--", "ok"]


def test_paper_table_varying_columns_units_caption_label(tmp_path: Path) -> None:
    """Columns: encoder, strategy, the parameters that tell rows apart (max tiles: a budget
    sweep), then results with units; what all rows share goes to the caption."""
    table = _study_table(tmp_path, [
        {"encoder": "clip_vit_l14_336", "latency": 9.374, "values": {"encode_p25_ms": 8.0, "encode_p75_ms": 10.26}},
        *({"encoder": "internvit_300m", "strategy": "internvl_dynamic", "pp": {"max_tiles": m, "thumbnail": True},
           "tokens": 256.0 * (m + 1), "latency": 163.84, "values": {"encode_p25_ms": 150.0, "encode_p75_ms": 170.0}}
          for m in (6, 12)),
    ])
    tex = (tmp_path / "tables" / "s.tex").read_text()
    head = next(line for line in tex.splitlines() if line.startswith("Encoder"))
    assert head == (r"Encoder & Strategy & Max tiles & Visual tokens & Encode p50 (ms/img) & "
                    r"Encode p25--p75 (ms/img) \\")  # no Precision / Device / Thumbnail: they tell no rows apart
    assert r"\label{tab:s}" in tex and r"\caption{s: 3 configurations; fixed:" in tex
    assert "precision float32" in tex and "device cpu" in tex and "dataset num images 6" in tex
    rows = [line for line in tex.splitlines() if line.startswith(("clip", "internvit"))]
    assert rows == [r"clip\_vit\_l14\_336 & resize & - & 576 & 9.37 & 8.00--10.3 \\",
                    r"internvit\_300m & internvl\_dynamic & 6 & 1,792 & 164 & 150--170 \\",
                    r"internvit\_300m & internvl\_dynamic & 12 & 3,328 & 164 & 150--170 \\"]
    assert "status" not in tex.lower()  # nothing failed
    assert len(table) == 3


def test_mme_table_in_paper_layout(tmp_path: Path) -> None:
    """Subtasks in the official order, Perception then Cognition, each total after its group;
    a run missing a subtask gets no total for that group."""
    from harness.benchmarks.mme.subtasks import COGNITION, PERCEPTION, SUBTASKS

    runs = tmp_path / "runs"
    for i, skip in enumerate((None, "OCR")):
        run_dir = fake_run(runs, "s", f"d{i:011x}", encoder=["clip_vit_l14_336", "internvit_300m"][i])
        rows = RunStore(run_dir).records()
        ident = {k: rows[k].iloc[-1] for k in ("run_id", "study", "config_hash", "encoder", "strategy")}
        extra = [Record("metric", ident, values={"metric": "mme_score", "category": c, "value": 100.0 + j})
                 for j, c in enumerate(SUBTASKS) if c != skip]
        recs = [Record(r["kind"], {}, values={k: v for k, v in r.items() if k != "kind"})
                for r in rows.to_dict("records")]
        ids, emb = RunStore(run_dir).embeddings()
        import shutil

        shutil.rmtree(run_dir)
        RunStore(run_dir).write(recs + extra, {}, (ids, emb))
    assert report.main([str(runs), "--tables-only"]) == 0
    tex = (tmp_path / "tables" / "s_mme.tex").read_text().splitlines()
    groups = next(line for line in tex if "multicolumn" in line)
    assert groups == r" & \multicolumn{11}{c}{Perception} & \multicolumn{5}{c}{Cognition} \\"
    head = next(line for line in tex if line.startswith("Configuration"))
    names = [n.replace("_", " ") for n in PERCEPTION] + ["Total"] + [n.replace("_", " ") for n in COGNITION] + ["Total"]
    assert head == "Configuration & " + " & ".join(names) + r" \\"
    clip = next(line for line in tex if line.startswith("clip"))
    perception = sum(100.0 + j for j in range(10))
    cognition = sum(100.0 + j for j in range(10, 14))
    assert clip.endswith(f"& {perception:,.0f} & 110 & 111 & 112 & 113 & {cognition:.0f} " + r"\\")
    intern = next(line for line in tex if line.startswith("internvit")).split(" & ")
    assert intern[10] == "--" and intern[11] == "--" and intern[-1] == f"{cognition:.0f} " + r"\\"


def test_labels_leave_out_what_follows_from_the_encoder(tmp_path: Path) -> None:
    """quickstart-like: each encoder has its own tile size; the tile size varies but tells no
    two rows apart that the encoder does not, so labels stay `encoder / strategy`."""
    from harness.reporting.figures import config_labels

    table = _study_table(tmp_path, [
        {"encoder": "clip_vit_l14_336", "strategy": "center_crop", "pp": {"tile_size": 336}},
        {"encoder": "internvit_300m", "strategy": "internvl_dynamic", "pp": {"tile_size": 448, "max_tiles": 12}},
    ])
    assert list(config_labels(table)) == ["clip_vit_l14_336 / center_crop", "internvit_300m / internvl_dynamic"]
