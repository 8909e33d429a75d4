"""The CLIP text-tower MME baseline end to end: a tiny CLIPModel + tokenizer saved the way
transformers saves them, the MME parquet fixture, the run folder, and the report's MME table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness import report
from harness.benchmarks.mme import baseline as mme_baseline
from harness.benchmarks.mme.scoring import score
from harness.benchmarks.mme.subtasks import PERCEPTION, SUBTASKS
from harness.pipeline.store import find_runs
from tests.helpers.data import mme_images, write_mme_parquet, write_tiny_clip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:(?s).*is validated against ConfigStore schema:UserWarning"),
]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIPModel (safetensors) and a character-level CLIP BPE tokenizer, offline."""
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def mme_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mme_parquet(tmp_path_factory.mktemp("mme"), mme_images(4))


def test_baseline_run_scores_officially(clip_folder: Path, mme_parquet: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = [f"encoder.weights={clip_folder}", f"dataset.path={mme_parquet}", f"results_dir={results}",
            "progress=false", "batch_views=8"]
    assert mme_baseline.main(args) == 0
    (run_dir,) = find_runs(results / "runs")
    assert run_dir.parent.name == "mme_baseline"
    rec = pd.read_parquet(run_dir / "records.parquet")
    for col in ("run_id", "config_hash", "git_commit", "torch_version", "strategy_params", "dataset_params", "seed"):
        assert rec[col].notna().all(), col  # the same identity columns as every run's rows
    assert set(rec["dtype"]) == {"float32"} and set(rec["encoder"]) == {"clip_vit_l14_336+text"}
    questions = rec[rec["kind"] == "question"].rename(columns={"image_id": "question_id"})
    assert len(questions) == 14 * 4 * 2 and questions["question_id"].nunique() == 14 * 4
    # thresholds are fitted on half the images of each subtask; those images are never scored
    per_image = questions.groupby("question_id")["split"].agg(set)
    assert all(len(s) == 1 for s in per_image)
    assert (questions.groupby("category")["split"].apply(lambda s: (s == "fit").sum()) == 4).all()
    assert questions.loc[questions["split"] == "fit", "prediction"].isna().all()
    scored = questions[questions["split"] == "scored"]
    assert set(scored["prediction"]) <= {"Yes", "No"}
    # the stored metrics are MME's official figures of the stored predictions
    expect = score(scored)
    metrics = rec[rec["kind"] == "metric"]
    by = {(m, c): v for m, c, v in zip(metrics["metric"], metrics["category"], metrics["value"], strict=True)}
    for name in SUBTASKS:
        assert by[("mme_score", name)] == pytest.approx(expect["subtasks"][name]["score"])
        assert 0 <= by[("pairwise_accuracy", name)] <= 100
    perception = next(v for m, v in zip(metrics["metric"], metrics["value"], strict=True) if m == "mme_perception")
    assert perception == pytest.approx(sum(by[("mme_score", n)] for n in PERCEPTION)) == pytest.approx(
        expect["perception"])
    # the report: <study>_mme table (scores only, not pairwise accuracy) and the MME figure
    out = tmp_path / "out"
    assert report.main([str(results / "runs"), "--out", str(out)]) == 0
    mme = pd.read_parquet(out / "tables" / "mme_baseline_mme.parquet")
    assert sorted(mme["category"]) == sorted(SUBTASKS) and set(mme["metric"]) == {"mme_score"}
    assert (out / "figures" / "mme_baseline" / "mme_subtasks.pdf").stat().st_size > 1000
    table = pd.read_parquet(out / "tables" / "mme_baseline.parquet")
    assert table["metric:mme_perception"].iloc[0] == pytest.approx(perception)


@pytest.mark.parametrize("args,needle", [
    (["encoder=internvit_300m"], "needs CLIP's text tower"),
    (["encoder.weights=random"], "needs trained weights"),
    (["dataset=synthetic"], "dataset=mme"),
    (["preprocess=internvl_dynamic"], "one view"),
    (["encoder.weights=/nonexistent/clip"], "cannot load CLIPModel"),
])
def test_bad_configs_fail_with_one_line(args: list[str], needle: str, mme_parquet: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = [f"dataset.path={mme_parquet}"] if "dataset=synthetic" not in args else []
    weights = [] if any(a.startswith("encoder.weights") or a.startswith("encoder=") for a in args) else [
        "encoder.weights=/nonexistent/clip"]
    assert mme_baseline.main([*base, *weights, *args, f"results_dir={tmp_path}", "progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "runs").exists()


def test_corrupt_image_becomes_an_error_row(clip_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers.data import MMEImage

    real = MMEImage.encode

    def encode(self: MMEImage) -> bytes:
        return b"not an image" if self.category == "scene" and self.file_name.endswith("_001.jpg") else real(self)

    monkeypatch.setattr(MMEImage, "encode", encode)
    parquet = write_mme_parquet(tmp_path / "mme", mme_images(4))
    assert mme_baseline.main([f"encoder.weights={clip_folder}", f"dataset.path={parquet}",
                              f"results_dir={tmp_path / 'results'}", "progress=false"]) == 0
    (run_dir,) = find_runs(tmp_path / "results" / "runs")
    rec = pd.read_parquet(run_dir / "records.parquet")
    errors = rec[rec["kind"] == "image"]
    assert len(errors) == 1 and errors["image_id"].iloc[0].endswith("scene/sce_001.jpg")
    assert errors["status"].iloc[0].startswith("error") and errors["message"].iloc[0]
    run = rec[rec["kind"] == "run"].iloc[0]
    assert run["n_errors"] == 1 and run["n_ok"] == 14 * 4 - 1
