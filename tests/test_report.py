"""Tables and figures from records the tests make (tiny runs in-process, one failed job, and
test-made quality / MME / CKA rows), and figures that rebuild to the same bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.config import compose
from harness.pipeline.execute import run, write_failure
from harness.pipeline.store import RunStore, find_runs
from harness.reporting.figures import pareto_front, quality_column
from harness.types import Record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
]
STUDY = "reporttest"
MME_CATEGORIES = ("existence", "count", "OCR")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished tiny runs (batch_views 1 and 4), one failed job, and a third run with
    run-level metric rows (kNN accuracy, per-subtask MME scores)."""
    out = tmp_path_factory.mktemp("results")
    base = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "dataset.num_images=3",
            f"study={STUDY}", f"results_dir={out}"]
    for bv in (1, 4):
        run([*base, f"batch_views={bv}"])
    bad = [*base, "encoder.weights=/nonexistent"]
    try:
        run(bad)
    except Exception as exc:  # noqa: BLE001 - exactly what the command does inside a sweep
        write_failure(compose(bad), exc)
    run_dir = run([*base, "seed=7"]).run_dir
    rows = RunStore(run_dir).records()
    ident = {k: rows[k].iloc[-1] for k in ("run_id", "study", "config_hash", "encoder", "strategy")}
    extra = [Record("metric", ident, values={"metric": "knn_accuracy", "value": 0.5})]
    extra += [Record("metric", ident, values={"metric": "mme_score", "category": c, "value": 50.0 + 10 * i})
              for i, c in enumerate(MME_CATEGORIES)]
    recs = [Record(r["kind"], {}, values={k: v for k, v in r.items() if k != "kind"}) for r in rows.to_dict("records")]
    shutil.rmtree(run_dir)
    RunStore(run_dir).write(recs + extra, {"seed": 7})
    return out


@pytest.fixture(scope="module")
def built(results: Path) -> Path:
    assert report.main([str(results / "runs"), "--out", str(results), "--tables-only"]) == 0
    return results


def test_study_compare_table_pairs_the_runs_with_embeddings(built: Path) -> None:
    """The two runs that cached embeddings (the third was rewritten without) form one pair,
    over the same 3 images, with CKA in [0, 1]; same encoder and seed, same strategy params ->
    a same-config pair (batch_views differs), so stability is measured."""
    compare = pd.read_parquet(built / "tables" / f"{STUDY}_compare.parquet")
    table = pd.read_parquet(built / "tables" / f"{STUDY}.parquet")
    assert len(compare) == 1 and {compare["run_a"].iloc[0], compare["run_b"].iloc[0]} <= set(table["run_id"])
    row = compare.iloc[0]
    assert row["n_images"] == 3 and 0 <= row["linear_cka"] <= 1 + 1e-9 and row["comparison"] == "same-config"
    assert row["stability_mean"] == pytest.approx(1.0, abs=1e-3)  # batching does not change embeddings


def test_study_table_one_row_per_configuration_failures_kept(built: Path) -> None:
    table = pd.read_parquet(built / "tables" / f"{STUDY}.parquet")
    assert len(table) == 4 and table["config_hash"].is_unique
    assert sorted(table["status"]) == ["error:load", "ok", "ok", "ok"]
    failed = table[table["status"] == "error:load"].iloc[0]
    assert "nonexistent" in failed["message"] or "Error" in failed["message"]
    assert np.isnan(failed["visual_tokens_mean"])
    ok = table[table["status"] == "ok"]
    assert (ok["visual_tokens_mean"] == 576).all() and (ok["n_images"] == 3).all()
    assert sorted(ok["batch_views"]) == [1, 4, 16]
    assert table["metric:knn_accuracy"].dropna().tolist() == [0.5]
    assert quality_column(table) == "metric:knn_accuracy"
    for ext in ("csv", "md", "tex"):
        assert (built / "tables" / f"{STUDY}.{ext}").stat().st_size > 0
    tex = (built / "tables" / f"{STUDY}.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "error:load" in tex
    assert "clip\\_vit\\_l14\\_336" in tex
    assert len(pd.read_csv(built / "tables" / f"{STUDY}.csv")) == 4


def test_rerun_of_a_config_replaces_its_row(built: Path, tmp_path: Path) -> None:
    """Two complete runs of one configuration still give one row (the newest), attempts=2."""
    runs = find_runs(built / "runs")
    copy = tmp_path / "runs" / STUDY
    copy.mkdir(parents=True)
    for r in runs:
        shutil.copytree(r, copy / r.name)
    newest = runs[0].name.replace("2026", "2099", 1)
    shutil.copytree(runs[0], copy / newest)
    tables = report.build_tables([str(tmp_path / "runs")], tmp_path)
    table = tables[STUDY]
    assert len(table) == 3
    assert table.set_index("config_hash").loc[runs[0].name.rsplit("-", 1)[-1], "attempts"] == 2


def test_mme_table_from_metric_rows(built: Path) -> None:
    mme = pd.read_parquet(built / "tables" / f"{STUDY}_mme.parquet")
    assert sorted(mme["category"]) == sorted(MME_CATEGORIES)
    assert mme.set_index("category")["score"].to_dict() == {"existence": 50.0, "count": 60.0, "OCR": 70.0}


def test_figures_build_and_rebuild_byte_identical(built: Path, tmp_path: Path) -> None:
    """Every figures.py runs; the study figures appear as PDF + PNG; a second build from the same
    tables gives the same bytes."""
    from harness.reporting import style
    from harness.reporting.figures import (
        cka_heatmap,
        latency_vs_tokens,
        memory_vs_views,
        mme_bars,
        quality_vs_tokens,
        read_tables,
    )

    tables = read_tables(built / "tables", STUDY)
    assert tables is not None and not tables.compare.empty and not tables.mme.empty

    def build(out: Path) -> dict[str, bytes]:
        style.apply()
        paths = [*latency_vs_tokens(tables.main, out), *memory_vs_views(tables.main, out),
                 *quality_vs_tokens(tables.main, out), *cka_heatmap(tables.compare, tables.main, out),
                 *mme_bars(tables.mme, out)]
        return {p.name: p.read_bytes() for p in paths}

    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert len(first) == 10 and first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first), [k for k in first if first[k] != second[k]]
    pdf = first["latency_vs_tokens.pdf"]
    assert b"/FontFile2" in pdf and b"/CreationDate" not in pdf  # TrueType embedded, no date
    assert b"Software" not in first["latency_vs_tokens.png"]


def test_make_figures_runs_every_study_script(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make figures` = every experiments/*/figures.py; a study without tables is skipped, named once."""
    study_tables = built / "tables" / "quickstart.parquet"
    shutil.copy(built / "tables" / f"{STUDY}.parquet", study_tables)
    try:
        assert report.main(["--figures-only", "--out", str(built)]) == 0
    finally:
        study_tables.unlink()
    made = sorted(p.name for p in (built / "figures" / "quickstart").iterdir())
    assert made == ["latency_vs_tokens.pdf", "latency_vs_tokens.png", "memory_vs_views.pdf", "memory_vs_views.png",
                    "quality_vs_tokens.pdf", "quality_vs_tokens.png"]
    assert len(report.figure_scripts()) == 9  # the five studies of issue 7, mme_strategies, token_budget,
    # native_vs_tiles, benchmarks_by_strategy
    printed = capsys.readouterr().out
    assert "no tables yet" in printed and "encoder_zoo" in printed and "quickstart" not in printed.split("\n")[0]


def test_pareto_front() -> None:
    tokens = np.array([576, 1152, 2304, 1152, 3000])
    quality = np.array([0.5, 0.7, 0.65, 0.6, 0.8])
    assert pareto_front(tokens, quality).tolist() == [0, 1, 4]


def test_run_job_skips_complete_config_unless_rerun(results: Path) -> None:
    """In-process resume: the same config returns the existing folder; rerun=true makes a new one."""
    base = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "dataset.num_images=3",
            f"study={STUDY}", f"results_dir={results}", "batch_views=4"]
    before = find_runs(results / "runs")
    skipped = run([*base, "progress=true"])
    assert skipped.status == "skipped" and skipped.run_dir in before and find_runs(results / "runs") == before
    again = run([*base, "rerun=true"]).run_dir
    skipped = skipped.run_dir
    assert again not in before and again.name.rsplit("-", 1)[-1] == skipped.name.rsplit("-", 1)[-1]
    shutil.rmtree(again)
