"""The benchmarks_by_strategy study: every job of its sweeps passes the pre-load checks on
local copies of each benchmark, and a tiny offline run (random InternVL at two tile budgets on
POPE and MME fixtures) gives the report table, the score table and the figure, whose numbers
are the runs' own scores."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.config import compose
from harness.job import prepare_job
from harness.sweep import study_experiments
from tests.fixtures_benchmarks import write_docvqa_parquet, write_pope_parquet, write_textvqa_parquet
from tests.fixtures_data import mme_images, write_mme_parquet
from tests.test_sweep import _sweep_jobs

ROOT = Path(__file__).resolve().parents[1]
TINY = ["encoder.size=tiny", "encoder.weights=random", "progress=false"]


def local_copies(tmp: Path) -> dict[str, Path]:
    return {"mme": write_mme_parquet(tmp / "mme", mme_images(1)), "pope": write_pope_parquet(tmp / "pope"),
            "textvqa": write_textvqa_parquet(tmp / "textvqa"), "docvqa": write_docvqa_parquet(tmp / "docvqa")}


def has_prompts(benchmark: str) -> bool:
    return importlib.util.find_spec(f"harness.benchmarks.{benchmark}.prompts") is not None


def test_every_job_passes_the_pre_load_checks(tmp_path: Path) -> None:
    data = local_copies(tmp_path)
    experiments = study_experiments("benchmarks_by_strategy")
    assert len(experiments) == 5
    seen: set[tuple[str, str]] = set()
    for experiment in experiments:
        for overrides in _sweep_jobs(experiment):
            benchmark = next(o.split("=", 1)[1] for o in overrides if o.startswith("dataset="))
            if not has_prompts(benchmark):
                continue  # its prompts.py comes with the scoring modules
            job = prepare_job(compose([f"experiment={experiment}", *overrides, *TINY,
                                       f"dataset.path={data[benchmark]}"]))
            assert job.answerer_cls is not None and job.study == "benchmarks_by_strategy"
            assert job.dataset.name == benchmark and job.answerer_kwargs["protocol"] == "lmms_eval"
            seen.add((job.answerer_cls.name, benchmark))
    assert {("internvl", "mme"), ("internvl", "pope"), ("llava_next", "mme"), ("llava_next", "pope")} <= seen


@pytest.mark.slow
def test_tiny_offline_run_gives_the_tables_and_the_figure(tmp_path: Path) -> None:
    from harness.execute import execute
    from harness.report import build_tables

    data = local_copies(tmp_path / "data")
    out = tmp_path / "out"
    for benchmark in ("pope", "mme"):
        for tiles in (1, 2):
            overrides = ["experiment=benchmarks_by_strategy_internvl", *TINY, f"dataset={benchmark}",
                         f"dataset.path={data[benchmark]}", f"preprocess.max_tiles={tiles}", "vlm.max_new_tokens=2",
                         f"results_dir={out}"]
            assert execute(prepare_job(compose(overrides))).status == "ok"
    build_tables([str(out / "runs")], out)
    table = pd.read_parquet(out / "tables" / "benchmarks_by_strategy.parquet")
    assert sorted(table["dataset"]) == ["mme", "mme", "pope", "pope"]
    argv = sys.argv
    sys.argv = ["figures.py", "--tables", str(out / "tables"), "--out", str(out / "figures")]
    try:
        with pytest.raises(SystemExit):
            runpy.run_path(str(ROOT / "experiments/benchmarks_by_strategy/figures.py"), run_name="__main__")
    finally:
        sys.argv = argv
    made = out / "figures" / "benchmarks_by_strategy"
    assert {"score_vs_tokens_by_benchmark.png", "benchmarks_by_strategy_scores.csv"} <= {p.name for p in made.iterdir()}
    scores = pd.read_csv(made / "benchmarks_by_strategy_scores.csv")
    assert len(scores) == 2 and set(scores.columns) >= {"config", "mme", "pope"}  # two tile budgets x 2 benchmarks
    pope = table[table["dataset"] == "pope"].sort_values("pp_max_tiles")
    assert scores.sort_values("config")["pope"].tolist() == pytest.approx(pope["metric:pope_f1"].tolist())
    mme = table[table["dataset"] == "mme"].sort_values("pp_max_tiles")
    assert scores.sort_values("config")["mme"].tolist() == pytest.approx(
        (mme["metric:mme_perception"] + mme["metric:mme_cognition"]).tolist())
