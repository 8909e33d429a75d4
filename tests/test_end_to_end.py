"""The walking skeleton: every config composes, one run end to end writes records that the
report turns into tables and a figure, and a bad choice fails early with exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from harness.config import CONFIG_DIR, GROUPS, choices
from tests.helpers.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize(
    "group,choice",
    [(g, c) for g in GROUPS if g != "hydra/launcher" for c in choices(g)],
)
def test_every_config_composes(group: str, choice: str) -> None:
    cfg = _compose([f"{group}={choice}"])
    if group != "experiment":
        assert cfg[group]["name"] in (choice, "native")
    else:
        assert cfg.study  # every study names itself


def test_every_launcher_config_composes() -> None:
    for choice in choices("hydra/launcher"):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"hydra/launcher={choice}"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_


def _harness(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli(module, *args, cwd=cwd)


def test_end_to_end_run_and_report(tmp_path: Path) -> None:
    res = _harness(
        "harness", "encoder=clip_vit_l14_336", "preprocess=resize", "dataset=synthetic",
        "encoder.size=tiny", "encoder.weights=random", "dataset.num_images=5", "batch_views=2",
        f"results_dir={tmp_path}", "progress=false", cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    run_dirs = list((tmp_path / "runs" / "default").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    assert {"records.parquet", "config.yaml", "COMPLETE", "embeddings.npz"} <= {p.name for p in run_dir.iterdir()}
    assert not list(run_dir.glob("*.part"))
    rec = pd.read_parquet(run_dir / "records.parquet")
    images = rec[rec.kind == "image"]
    assert len(images) == 5 and (images.status == "ok").all()
    # CLIP 336 with a plain resize: one view, 24 x 24 patches.
    assert (images.visual_tokens == 576).all()
    assert (images.encode_ms > 0).all() and (images.preprocess_ms > 0).all()
    run = rec[rec.kind == "run"].iloc[0]
    assert run.n_images == 5 and run.n_errors == 0 and run.peak_rss_mb > 0
    for col in ("run_id", "git_commit", "torch_version", "transformers_version", "encoder", "encoder_size",
                "weights", "strategy", "strategy_params", "dataset", "device", "dtype", "seed", "config_hash"):
        assert col in rec.columns and rec[col].notna().all(), col
    assert rec.weights.iloc[0] == "random" and rec.encoder_size.iloc[0] == "tiny"
    assert rec.run_id.nunique() == 1 and rec.run_id.iloc[0] == run_dir.name

    out = tmp_path / "report"
    rep = _harness("harness.report", str(tmp_path / "runs"), "--out", str(out), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    table = pd.read_parquet(out / "tables" / "summary.parquet")
    assert len(table) == 1 and table.visual_tokens_mean.iloc[0] == 576
    assert (out / "tables" / "summary.csv").read_text().startswith("study,")
    assert "clip_vit_l14_336" in (out / "tables" / "summary.md").read_text()
    for ext in ("pdf", "png"):
        assert (out / "figures" / "default" / f"latency_vs_tokens.{ext}").stat().st_size > 1000


@pytest.mark.parametrize(
    "args,needle",
    [
        (["encoder=nope"], "unknown encoder 'nope'; valid choices: "),
        (["-m", "preprocess=resize,nope"], "unknown preprocess 'nope'; valid choices: "),
        (["dataset=nope"], "unknown dataset 'nope'; valid choices: "),
    ],
)
def test_bad_choice_fails_early_with_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    res = _harness("harness", *args, f"results_dir={tmp_path}", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert "clip_vit_l14_336" in lines[0] or "resize" in lines[0] or "synthetic" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_bad_parameter_fails_before_model_loads(tmp_path: Path) -> None:
    res = _harness("harness", "encoder.size=huge", "encoder.weights=random", f"results_dir={tmp_path}", cwd=tmp_path)
    assert res.returncode == 2
    assert "size must be one of full, tiny; got 'huge'" in res.stderr
    res = _harness("harness", "+preprocess.bogus=1", "encoder.size=tiny", "encoder.weights=random",
                   f"results_dir={tmp_path}", cwd=tmp_path)
    assert res.returncode == 2 and "unknown key preprocess.bogus" in res.stderr and "valid keys:" in res.stderr


@pytest.mark.parametrize("study", sorted(p.parent.name for p in (ROOT / "experiments").glob("*/figures.py")))
def test_study_figure_scripts_import_as_modules(study: str) -> None:
    """`experiments.<study>.figures` imports from the checkout root (no sys.path edits in the
    scripts) and runs nothing on import."""
    import importlib

    source = (ROOT / "experiments" / study / "figures.py").read_text()
    assert "sys.path" not in source
    module = importlib.import_module(f"experiments.{study}.figures")
    assert module.__name__ == f"experiments.{study}.figures"
