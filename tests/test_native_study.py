"""The native_vs_tiles study: every job passes the pre-load checks (Qwen2.5-VL and
LLaVA-OneVision jobs with their language models); a tiny native-resolution run with one image per
batch answers its questions and writes per-image rows that the report turns into
`native_vs_tiles_images`, answer columns in `native_vs_tiles`, and the study's figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.config import compose, study_experiments
from harness.pipeline.job import prepare_job
from tests.helpers.sweeps import sweep_jobs

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning")


def test_every_job_passes_the_pre_load_checks() -> None:
    experiments = study_experiments("native_vs_tiles")
    assert experiments == ["native_vs_tiles/onevision", "native_vs_tiles/qwen_native", "native_vs_tiles/qwen_tiles",
                           "native_vs_tiles/siglip"]
    offline = ["encoder.size=tiny", "encoder.weights=random"]  # the language models' checks read no hub
    jobs = [prepare_job(compose([f"experiment={experiment}", *overrides, *offline]))
            for experiment in experiments for overrides in sweep_jobs(experiment)]
    assert len(jobs) == 10 and all(j.config["batch_images"] == 1 for j in jobs)
    families = [(j.encoder_cls.name, j.answerer_cls.name if j.answerer_cls else None) for j in jobs]
    assert families.count(("qwen2_5_vl_vit", "qwen2_5_vl")) == 7
    assert families.count(("siglip_so400m", "llava_onevision")) == 1 and families.count(("siglip_so400m", None)) == 2
    budgets = sorted(j.strategy.max_pixels for j in jobs if j.strategy.name == "qwen_native")
    assert budgets == [256 * 784, 576 * 784, 1280 * 784, 4096 * 784]


@pytest.mark.slow
def test_tiny_run_writes_per_image_rows_and_figures(tmp_path: Path) -> None:
    from harness.pipeline.execute import execute
    from harness.report import build_tables
    from harness.reporting.figures import read_tables

    overrides = ["experiment=native_vs_tiles/qwen_native", "preprocess.max_pixels=50176", "encoder.size=tiny",
                 "encoder.weights=random", "dataset.num_images=4", f"results_dir={tmp_path}", "progress=false"]
    assert execute(prepare_job(compose(overrides))).status == "ok"
    build_tables([str(tmp_path / "runs")], tmp_path)
    images = pd.read_parquet(tmp_path / "tables" / "native_vs_tiles_images.parquet")
    assert len(images) == 4 and (images["batch_images"] == 1).all()
    assert (images["view_width"] % 28 == 0).all() and (images["view_height"] % 28 == 0).all()
    assert (images["visual_tokens"] == (images["view_width"] // 28) * (images["view_height"] // 28)).all()
    assert (images["view_width"] * images["view_height"] <= 50176).all()
    assert (images["pp_max_pixels"] == 50176).all() and (images["encoder"] == "qwen2_5_vl_vit").all()
    (row,) = pd.read_parquet(tmp_path / "tables" / "native_vs_tiles.parquet").to_dict("records")
    assert row["vlm"] == "qwen2_5_vl" and row["n_questions"] >= 4 and row["answers_complete"]
    assert row["n_question_errors"] == 0 and row["prefill_p50_ms"] > 0
    assert 0 <= row["metric:yes_no_score"] <= 200  # acc + acc+ in percent over the yes/no pairs
    # tiles through the same ViT answer too (each tile's grid placed as one more image)
    tiles = ["experiment=native_vs_tiles/qwen_tiles", "preprocess=llava_onevision",
             "encoder.size=tiny", "encoder.weights=random", "dataset.num_images=2", "vlm.max_new_tokens=2",
             f"results_dir={tmp_path / 'tiles'}", "progress=false"]
    outcome = execute(prepare_job(compose(tiles)))
    assert outcome.status == "ok", outcome.message
    rec = pd.read_parquet(outcome.run_dir / "records.parquet")
    q = rec[rec["kind"] == "question"]
    assert len(q) >= 2 and (q["status"] == "ok").all() and (q["visual_tokens"] % 256 == 0).all()
    assert (q["visual_tokens"] >= 2 * 256).all()  # a base view and at least one tile

    import runpy
    import sys

    argv = sys.argv
    sys.argv = ["figures.py", "--tables", str(tmp_path / "tables"), "--out", str(tmp_path / "figures")]
    try:
        with pytest.raises(SystemExit):
            runpy.run_path(str(Path(__file__).parents[1] / "experiments/native_vs_tiles/figures.py"),
                           run_name="__main__")
    finally:
        sys.argv = argv
    written = sorted(p.name for p in (tmp_path / "figures" / "native_vs_tiles").iterdir())
    assert "tokens_vs_image_size.png" in written and "latency_vs_image_size.pdf" in written
    assert "memory_vs_image_size.png" not in written  # CPU: no device peaks
    assert read_tables(tmp_path / "tables", "native_vs_tiles").images.shape[0] == 4


def test_batch_images_keys_the_job_only_when_set() -> None:
    """Null (the default) leaves earlier runs' resume keys as they were; a value is a new job."""
    from harness.config import ConfigError

    base = ["encoder.size=tiny", "encoder.weights=random"]
    default, one = prepare_job(compose(base)), prepare_job(compose([*base, "batch_images=1"]))
    assert "batch_images" not in default.key() and one.key()["batch_images"] == 1
    assert default.config_hash != one.config_hash
    with pytest.raises(ConfigError, match="batch_images"):
        prepare_job(compose([*base, "batch_images=0"]))
