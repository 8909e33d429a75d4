"""The mme_strategies study: its experiment configs compose into jobs with a VLM, and its
figures are drawn from a table shaped like the report's (MME totals, prefill, per-subtask)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

from harness.config import compose, study_experiments
from harness.pipeline.job import prepare_job
from harness.reporting.figures import StudyTables

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = ["encoder.size=tiny", "encoder.weights=random", "dataset=synthetic"]


def test_every_experiment_of_the_study_prepares_a_job_with_a_vlm() -> None:
    names = study_experiments("mme_strategies")
    assert len(names) == 5
    families = set()
    for name in names:
        job = prepare_job(compose([f"experiment={name}", *OFFLINE]))
        assert job.answerer_cls is not None and job.study == "mme_strategies"
        families.add(job.answerer_cls.name)
    assert families == {"llava_next", "internvl", "phi3_vision"}


def test_figures_from_a_report_shaped_table(tmp_path: Path) -> None:
    figures = runpy.run_path(str(ROOT / "experiments" / "mme_strategies" / "figures.py"))
    main = pd.DataFrame({
        "run_id": ["a", "b", "c"], "status": "ok", "vlm": ["internvl", "internvl", "llava_next"],
        "strategy": ["internvl_dynamic", "internvl_dynamic", "llava_anyres"], "pp_max_tiles": [1, 6, None],
        "visual_tokens_mean": [256.0, 1792.0, 2144.0], "prefill_p50_ms": [10.0, 60.0, 80.0],
        "metric:mme_perception": [900.0, 1200.0, 1100.0], "metric:mme_cognition": [200.0, 250.0, 240.0],
    })
    mme = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c", "c"], "category": ["OCR", "count"] * 3,
                        "score": [100.0, 120.0, 150.0, 110.0, 130.0, 90.0]})
    paths = figures["draw"](StudyTables(main, mme, pd.DataFrame()), tmp_path)
    assert {p.stem for p in paths} == {"mme_vs_tokens", "prefill_vs_tokens", "strategy_subtask_heatmap"}
    assert all(p.stat().st_size > 0 for p in paths)
    scored, label = figures["scored"](main)
    assert scored["score"].tolist() == pytest.approx([1100.0, 1450.0, 1340.0]) and label.startswith("MME")
