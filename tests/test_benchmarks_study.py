"""The benchmarks_by_strategy study: every job (family x benchmark x budget x reduction) passes
the pre-load checks on hub-schema parquet fixtures; the per-arm benchmarks table and its paper
.tex from a report-shaped table (hand-worked scores and arm names); a readable figure; and an
offline tiny run of the three families on the four benchmarks producing both."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.config import compose, study_experiments
from harness.pipeline.job import prepare_job
from harness.reporting import style
from harness.reporting.benchmark_table import arm_label, benchmarks_table, main_score
from harness.reporting.paper import MAX_COLUMNS, benchmarks_paper_table
from tests.helpers.benchmarks import write_docvqa_parquet, write_pope_parquet, write_textvqa_parquet
from tests.helpers.data import mme_images, write_mme_parquet
from tests.helpers.sweeps import sweep_jobs

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning")
ROOT = Path(__file__).resolve().parents[1]
STUDY = "benchmarks_by_strategy"
BENCHMARKS = ("mme", "pope", "textvqa", "docvqa")
TINY = ["encoder.size=tiny", "encoder.weights=random"]
FIVE = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # LLaVA-v1.6's pinpoints


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Hub-schema parquet folders of the four benchmarks, 2-3 images each."""
    root = tmp_path_factory.mktemp("benchmarks")
    return {"mme": write_mme_parquet(root / "mme", mme_images(1)[:3]), "pope": write_pope_parquet(root / "pope"),
            "textvqa": write_textvqa_parquet(root / "textvqa"), "docvqa": write_docvqa_parquet(root / "docvqa")}


def _dataset(overrides: list[str]) -> str:
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("dataset="))


def test_every_job_passes_the_pre_load_checks(fixtures: dict[str, Path]) -> None:
    experiments = study_experiments(STUDY)
    assert experiments == [f"{STUDY}/internvl", f"{STUDY}/llava", f"{STUDY}/qwen"]
    jobs = [prepare_job(compose([f"experiment={e}", *o, *TINY, f"dataset.path={fixtures[_dataset(o)]}"]))
            for e in experiments for o in sweep_jobs(e)]
    assert len(jobs) == 24 + 24 + 16 and {j.study for j in jobs} == {STUDY}
    assert all(j.config["vlm"]["protocol"] == "lmms_eval" for j in jobs)  # the one protocol all four benchmarks have
    by_family: dict[str, set[tuple]] = {}
    for j in jobs:
        budget = j.strategy.params().get("max_tiles") or j.strategy.params().get("max_pixels") or \
            len(j.strategy.params()["grid_pinpoints"])
        by_family.setdefault(j.answerer_cls.name, set()).add(
            (j.dataset.name, budget, j.reducer.name if j.reducer else "none"))
    assert by_family["internvl"] == {(b, t, r) for b in BENCHMARKS for t in (4, 12, 24) for r in ("none", "pool")}
    assert by_family["llava_next"] == {(b, n, r) for b in BENCHMARKS for n in (2, 5, 8) for r in ("none", "pool")}
    # Qwen's ViT refuses reductions: its fourth arm is the pixel budget 2x2 pooling of the native one would give
    assert by_family["qwen2_5_vl"] == {(b, t * 784, "none") for b in BENCHMARKS for t in (320, 576, 1280, 4096)}
    llava = next(j for j in jobs
                 if j.answerer_cls.name == "llava_next" and len(j.strategy.params()["grid_pinpoints"]) == 5)
    assert llava.strategy.params()["grid_pinpoints"] == FIVE and llava.config["encoder"]["connector"] == "llava_next"


def test_qwen_refuses_a_reduction_before_loading() -> None:
    from harness.config import ConfigError

    with pytest.raises(ConfigError, match="encoder 'qwen2_5_vl_vit' cannot be reduced"):
        prepare_job(compose([f"experiment={STUDY}/qwen", "+reduce_budget=pool_2", *TINY, "dataset=synthetic"]))


def _params(**kw: object) -> str:
    return json.dumps(kw, sort_keys=True)


def report_shaped_table() -> pd.DataFrame:
    """Three families x two arms x four benchmarks, metric columns as the report writes them;
    scores made from the arm and benchmark so the hand-worked values below are easy to read."""
    arms = {
        "internvl": [("internvl_dynamic", _params(max_tiles=12, tile_size=448), None, None),
                     ("internvl_dynamic", _params(max_tiles=12, tile_size=448), "pool", _params(stride=2))],
        "llava_next": [("llava_anyres", _params(grid_pinpoints=FIVE, tile_size=336), None, None),
                       ("llava_anyres", _params(grid_pinpoints=[*FIVE, [672, 1008], [1008, 672], [1008, 1008]],
                                                tile_size=336), None, None)],
        "qwen2_5_vl": [("qwen_native", _params(max_pixels=1003520, patch_size=14, merge_size=2), None, None),
                       ("qwen_native", _params(max_pixels=250880, patch_size=14, merge_size=2), None, None)],
    }
    rows = []
    for f, (family, family_arms) in enumerate(arms.items()):
        for a, (strategy, params, reduce, rd) in enumerate(family_arms):
            for b, bench in enumerate(BENCHMARKS):
                score = 10.0 * (f + 1) + a + b / 10
                metric = {"mme": {"metric:mme_perception": score, "metric:mme_cognition": 100.0},
                          "pope": {"metric:pope_f1": score, "metric:pope_accuracy": 1.0},
                          "textvqa": {"metric:textvqa_accuracy": score},
                          "docvqa": {"metric:docvqa_anls": score}}[bench]
                rows.append({"status": "ok", "vlm": family, "encoder": f"enc{f}", "strategy": strategy,
                             "strategy_params": params, "reduce": reduce, "reduce_params": rd, "dataset": bench,
                             "vlm_max_new_tokens": 16 + b, "run_id": f"r{f}{a}{b}",
                             "visual_tokens_mean": 100.0 * (f + 1) * (a + 1) + b, "prefill_p50_ms": 5.0 + b,
                             **metric})
    rows.append({**rows[0], "status": "error:oom", "run_id": "failed"})  # a failure has no score
    return pd.DataFrame(rows)


def test_main_scores_and_arm_names_by_hand() -> None:
    table = report_shaped_table()
    first = table.iloc[0]
    assert main_score(first) == pytest.approx(10.0 + 100.0)  # MME: perception + cognition
    assert main_score(table.iloc[1]) == pytest.approx(10.1)  # POPE: F1, not accuracy
    assert pd.isna(main_score(pd.Series({"dataset": "synthetic", "metric:yes_no_score": 3.0})))
    assert pd.isna(main_score(pd.Series({"dataset": "mme", "metric:mme_perception": 3.0})))  # half a score
    assert [arm_label(r) for _, r in table.iloc[[0, 4, 8, 12, 16, 20]].iterrows()] == [
        "max 12 tiles (native)", "max 12 tiles (native) +pool(2)", "max 4 tiles (native)", "max 9 tiles",
        "max 1280 tok (native)", "max 320 tok"]

    bench = benchmarks_table(table)
    assert len(bench) == 6 and bench["family"].tolist().count("internvl") == 2
    assert [c for c in bench.columns if c.startswith("score:")] == [f"score:{b}" for b in BENCHMARKS]
    pooled = bench[bench["arm"] == "max 12 tiles (native) +pool(2)"].iloc[0]
    assert pooled["score:mme"] == pytest.approx(11.0 + 100.0) and pooled["score:docvqa"] == pytest.approx(11.3)
    assert pooled["visual_tokens_mean:pope"] == 201.0 and pooled["prefill_p50_ms:textvqa"] == 7.0
    qwen = bench[bench["family"] == "qwen2_5_vl"]
    assert qwen["arm"].tolist() == ["max 1280 tok (native)", "max 320 tok"]  # ordered by tokens on the first benchmark

    tex = benchmarks_paper_table(bench, "s")
    assert tex.count(r"\begin{tabular}") == 2 and "Part 2 of 2" in tex
    for spec in [line for line in tex.splitlines() if line.startswith(r"\begin{tabular}")]:
        assert len(spec.split("{")[2].rstrip("}")) <= MAX_COLUMNS
    assert "MME perception + cognition" in tex and "DocVQA ANLS" in tex and r"max 12 tiles (native) +pool(2)" in tex


def _figure_script() -> dict:
    return runpy.run_path(str(ROOT / "experiments" / STUDY / "figures.py"))


def assert_readable_figure(table: pd.DataFrame, out: Path) -> None:
    figures = _figure_script()
    fig = figures["score_vs_tokens_figure"](table)
    assert fig is not None
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in panels) == sorted(["MME", "POPE", "TextVQA", "DocVQA"])
    style.plain_ticks(fig)
    style.declutter(fig)
    assert style.text_problems(fig) == []
    labels = {t.get_text() for ax in panels for t in ax.texts if t.get_visible()}
    assert labels and labels <= set(benchmarks_table(table)["arm"])
    paths = style.save(fig, out, "score_vs_tokens")
    assert all(p.stat().st_size > 0 for p in paths)


def test_figure_from_a_report_shaped_table_is_readable(tmp_path: Path) -> None:
    assert_readable_figure(report_shaped_table(), tmp_path)
    assert _figure_script()["score_vs_tokens_figure"](report_shaped_table().iloc[0:0]) is None


@pytest.mark.slow
def test_tiny_offline_run_makes_the_table_and_the_figure(fixtures: dict[str, Path], tmp_path: Path,
                                                        one_thread: None) -> None:
    from harness.pipeline.execute import execute
    from harness.report import build_tables

    arms = {"internvl": ["preprocess.max_tiles=2"], "llava": ["preprocess.grid_pinpoints=[[336,672],[672,336]]"],
            "qwen": ["preprocess.max_pixels=50176"]}
    jobs = [(family, bench, arm) for family, arm in arms.items() for bench in BENCHMARKS]
    jobs.append(("internvl", "mme", ["preprocess.max_tiles=2", "+reduce_budget=pool_2"]))
    for family, bench, arm in jobs:
        overrides = [f"experiment={STUDY}/{family}", f"dataset={bench}", f"dataset.path={fixtures[bench]}", *arm,
                     *TINY, "vlm.max_new_tokens=3", f"results_dir={tmp_path}", "progress=false"]
        outcome = execute(prepare_job(compose(overrides)))
        assert outcome.status == "ok", (family, bench, outcome.message)
    build_tables([str(tmp_path / "runs")], tmp_path)

    main = pd.read_parquet(tmp_path / "tables" / f"{STUDY}.parquet")
    assert len(main) == len(jobs) and (main["status"] == "ok").all() and (main["prefill_p50_ms"] > 0).all()
    bench = pd.read_parquet(tmp_path / "tables" / f"{STUDY}_benchmarks.parquet")
    assert sorted(bench["family"]) == ["internvl", "internvl", "llava_next", "qwen2_5_vl"]
    full = bench.dropna(subset=[f"score:{b}" for b in BENCHMARKS])  # each benchmark's main metric was written
    assert sorted(full["family"]) == ["internvl", "llava_next", "qwen2_5_vl"]
    for b in BENCHMARKS:
        assert ((full[f"score:{b}"] >= 0) & (full[f"score:{b}"] <= {"mme": 2800, "pope": 1}.get(b, 100))).all()
        assert (full[f"visual_tokens_mean:{b}"] > 0).all() and (full[f"prefill_p50_ms:{b}"] > 0).all()
    # the score is the benchmark's metric as the run wrote it: POPE F1 from the answers, by hand
    pope_run = main[(main["dataset"] == "pope") & (main["vlm"] == "internvl")].iloc[0]
    records = pd.read_parquet(Path(pope_run["run_dir"]) / "records.parquet")
    q = records[records["kind"] == "question"]
    tp = int(((q["prediction"] == "yes") & (q["answer"] == "yes")).sum())
    fp = int(((q["prediction"] == "yes") & (q["answer"] == "no")).sum())
    fn = int(((q["prediction"] == "no") & (q["answer"] == "yes")).sum())  # neither yes nor no: in no count
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0  # = 2PR / (P + R), a fraction as both toolkits print it
    internvl = bench[(bench["family"] == "internvl") & (bench["arm"] == "max 2 tiles")].iloc[0]
    assert internvl["score:pope"] == pytest.approx(f1, abs=1e-9)
    # 2x2 pooling of InternVL's merged grid: a quarter of the tokens on the same images
    pooled = bench[(bench["family"] == "internvl") & (bench["arm"] == "max 2 tiles +pool(2)")].iloc[0]
    assert pooled["visual_tokens_mean:mme"] * 4 == internvl["visual_tokens_mean:mme"]
    tex = (tmp_path / "tables" / f"{STUDY}_benchmarks.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2 and "POPE F1" in tex

    assert_readable_figure(main, tmp_path / "direct")
    argv = sys.argv
    sys.argv = ["figures.py", "--tables", str(tmp_path / "tables"), "--out", str(tmp_path / "figures")]
    try:
        with pytest.raises(SystemExit):
            runpy.run_path(str(ROOT / "experiments" / STUDY / "figures.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert sorted(p.name for p in (tmp_path / "figures" / STUDY).iterdir()) == ["score_vs_tokens.pdf",
                                                                               "score_vs_tokens.png"]
