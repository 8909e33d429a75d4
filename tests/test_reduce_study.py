"""The token_budget study: every job passes the pre-load checks (reduction presets zipped per
file, tile budgets), and its figure draws one line per method from a study table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from harness.config import compose, study_experiments
from harness.pipeline.job import prepare_job
from tests.helpers.sweeps import sweep_jobs

ROOT = Path(__file__).resolve().parent.parent


def test_every_token_budget_job_passes_the_pre_load_checks() -> None:
    jobs = {}
    for experiment in study_experiments("token_budget"):
        for overrides in sweep_jobs(experiment):
            job = prepare_job(compose([f"experiment={experiment}", *overrides, "dataset=synthetic"]))
            assert job.config["study"] == "token_budget"
            jobs[(experiment, *overrides)] = job
    assert len(jobs) == 15 + 15 + 12 + 4
    vz = jobs[("token_budget/llava", "+reduce_budget=visionzip_128")]
    assert vz.reducer is not None and vz.reducer.params() == {"dominant": 108, "contextual": 20}
    layout = vz.strategy.plan(1920, 1080)
    assert vz.encoder_cls.count_tokens(layout, "llava_next", vz.reducer) == 128 * layout.n_views
    # the unreduced preset with 12 tiles is the tile line's max_tiles=12 job: one hash, run once
    none = jobs[("token_budget/internvl", "+reduce_budget=none")]
    assert none.reducer is None
    assert none.config_hash == jobs[("token_budget/tiles_internvl", "preprocess.max_tiles=12")].config_hash


def test_figure_has_one_line_per_method(tmp_path: Path) -> None:
    module = importlib.import_module("experiments.token_budget.figures")
    rows = []
    for enc in ("clip_vit_l14_336", "internvit_300m"):
        for tokens, knn in ((2880, 0.8), (1152, 0.7), (576, 0.5)):
            rows.append({"encoder": enc, "status": "ok", "reduce": None, "visual_tokens_mean": tokens,
                         "metric:knn_top1_k10": knn, "encode_p50_ms": tokens / 10})
        for budget in (64, 128, 192):
            rows.append({"encoder": enc, "status": "ok", "reduce": "visionzip", "visual_tokens_mean": 5 * budget,
                         "metric:knn_top1_k10": 0.6 + budget / 1000, "encode_p50_ms": 288.0, "reduce_p50_ms": 2.0})
        rows.append({"encoder": enc, "status": "ok", "reduce": "prumerge", "rd_variant": "prumerge_plus",
                     "rd_adaptive": True, "visual_tokens_mean": 400, "metric:knn_top1_k10": 0.55,
                     "encode_p50_ms": 288.0, "reduce_p50_ms": 9.0})
    table = pd.DataFrame(rows)
    assert sorted(set(table.apply(module.method_label, axis=1))) == [module.TILES, "prumerge_plus", "visionzip"]
    paths = module.token_budget(table, tmp_path)
    assert {p.suffix for p in paths} == {".pdf", ".png"} and all(p.stat().st_size > 1000 for p in paths)
    fixed = pd.Series({"reduce": "prumerge", "rd_variant": "prumerge", "rd_adaptive": False})
    assert module.method_label(fixed) == "prumerge (fixed)"
