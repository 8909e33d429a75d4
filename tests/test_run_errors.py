"""Issue 12, run side: bad names, keys and values fail in one line (exit 2) before anything is
written or loaded; resume trusts the data, not a marker; write failures and interruptions say
what happened in one line and leave nothing half-written behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from harness.config import ConfigError, compose, validate_overrides
from harness.folders import FolderError, check_name, clean_leftovers
from harness.pipeline.execute import run, write_failure
from harness.pipeline.job import prepare_job
from harness.pipeline.store import COMPLETE, RECORDS, TMP_PREFIX, RunStore, find_runs
from tests.helpers.cli import cli

TINY = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "dataset.num_images=2"]


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- 1: names that become paths --------------------------------------------------------------

@pytest.mark.parametrize("study", ["../escape", "/an/absolute/path", "a/../../x", "a/b", ".", "..", "sp ace", ""])
def test_unsafe_study_names_are_refused(study: str) -> None:
    with pytest.raises(ConfigError, match="not a safe name"):
        validate_overrides([f"study={study}"])
    with pytest.raises(ValueError, match="not a safe name"):
        check_name(study)


def test_safe_names_pass() -> None:
    for name in ("quickstart", "tiling_budget", "run-2.v1", "A1"):
        assert check_name(name) == name
    assert validate_overrides(["study=a_b,c.d"]) == ["study=a_b,c.d"]


def test_unsafe_study_exits_2_before_hydra_writes_anything(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = cli("harness", "study=../escape", *TINY, f"results_dir={results}", cwd=tmp_path)
    assert done.returncode == 2
    assert "not a safe name" in one_error_line(done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results/, no hydra folder, no escape


def test_a_planted_run_with_an_unsafe_study_cannot_steer_the_report(tmp_path: Path) -> None:
    """A run folder whose records say `study=../../x` is skipped by the report, naming it;
    the other studies' tables are written, and nothing lands outside the tables folder."""
    import shutil

    from harness.report import build_tables, write_tables

    good = run(["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}", "study=good"])
    planted = tmp_path / "runs" / "good" / "20260101T000000_000000Z-abcdef123456"
    shutil.copytree(good.run_dir, planted)
    frame = RunStore(planted).records().assign(study="../../x", config_hash="abcdef123456", run_id=planted.name)
    frame.to_parquet(planted / RECORDS, index=False)
    tables = build_tables([str(tmp_path / "runs")], tmp_path / "out")
    assert set(tables) == {"good"}
    assert (tmp_path / "out" / "tables" / "good.csv").exists() and not (tmp_path / "x.csv").exists()
    with pytest.raises(ValueError, match="not a safe name"):
        write_tables(pd.DataFrame({"a": [1]}), tmp_path / "out", "../evil")


# --- 6: unknown keys and bad values ------------------------------------------------------------

@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["preprocess.max_tile=3"], "valid keys: backend, device, exif_transpose, mean, name, std, tile_size"),
        (["encoder.sise=tiny"], "valid keys: connector, feature_layer, name, out_dim, pool, size, weights"),
        (["preprocess=internvl_dynamic", "preprocess.max_tile=3"], "max_tiles, mean, min_tiles"),
        (["dataset.num_image=3"], "valid keys: max_side, name, num_images, seed"),
        (["sed=1"], "valid options: "),
    ],
)
def test_unknown_keys_name_the_valid_ones(overrides: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match="unknown") as info:
        validate_overrides(overrides)
    assert says in str(info.value)


def test_unknown_key_exits_2_in_one_line(tmp_path: Path) -> None:
    done = cli("harness", "preprocess.max_tile=3", f"results_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 2
    assert "valid keys" in one_error_line(done.stderr) and "+key" not in done.stderr


def test_a_strategy_parameter_works_plainly_under_native() -> None:
    plain = prepare_job(compose(["encoder=internvit_300m", "preprocess=native", "preprocess.max_tiles=6", *TINY]))
    plus = prepare_job(compose(["encoder=internvit_300m", "preprocess=native", "+preprocess.max_tiles=6", *TINY]))
    assert plain.strategy.max_tiles == plus.strategy.max_tiles == 6
    assert plain.config_hash == plus.config_hash
    with pytest.raises(ConfigError, match="valid keys"):  # not a parameter of CLIP's native center_crop
        compose(["encoder=clip_vit_l14_336", "preprocess=native", "preprocess.max_tiles=6"])


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("num_workers=-1", "num_workers must be 'auto' or an integer in [0, 256]"),
        ("seed=abc", "seed must be an integer in [0, 4294967295]"),
        ("encoder.feature_layer=99",
         "encoder.feature_layer (clip_vit_l14_336 tiny: 3 layers) must be an integer in [-4, 3]"),
        ("batch_views=1.5", "batch_views must be an integer in [1, 4096]"),
        ("encoder.out_dim=0", "encoder.out_dim must be an integer in [1, 65536]"),
        ("max_error_fraction=-1", "max_error_fraction must be a number in [0.0, 1.0]"),
        ("max_error_fraction=abc", "max_error_fraction must be a number in [0.0, 1.0]"),
        ("progress=maybe", "progress must be true or false"),
        ("rerun=2", "rerun must be true or false"),
        ("dataset.num_images=0", "dataset.num_images must be an integer in [1, 1000000]"),
        ("dataset.max_side=100000", "dataset.max_side must be an integer in [1, 8192]"),
        ("preprocess.tile_size=-3", "preprocess.tile_size must be an integer in [1, 2048]"),
        ("preprocess.backend=cv2", "valid: auto, numba, pil, torch"),
        ("preprocess.device=tpu", "valid: cpu, cuda"),
        *([] if torch.cuda.is_available() else [("preprocess.device=cuda", "needs a CUDA GPU")]),
    ],
)
def test_bad_values_fail_before_any_model_loads(override: str, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.encoders.clip_vit import ClipViT

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    monkeypatch.setattr(ClipViT, "build_backbone", no_model)
    with pytest.raises(ConfigError) as info:
        prepare_job(compose([*TINY, override]))
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["encoder=internvit_300m", "preprocess=internvl_dynamic", "preprocess.max_tiles=100000"],
         "preprocess.max_tiles must be an integer in [1, 64]"),
        (["encoder=internvit_300m", "preprocess=internvl_dynamic", "preprocess.min_tiles=7", "preprocess.max_tiles=6"],
         "preprocess.min_tiles must be an integer in [1, 6]"),
        (["encoder=phi3_vision", "preprocess=phi3_hd", "preprocess.num_crops=100000"],
         "preprocess.num_crops must be an integer in [1, 64]"),
        (["preprocess=llava_anyres", "preprocess.grid_pinpoints=[[336,100800]]"], "each at most 64 tiles"),
        (["preprocess=llava_anyres", "preprocess.grid_pinpoints=5"], "grid_pinpoints must be"),
        (["dataset=image_folder", "dataset.path=.", "dataset.limit=-2"], "dataset.limit must be an integer"),
    ],
)
def test_absurd_strategy_values_are_refused_at_once(
    overrides: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before the (quadratic) candidate search or any crop is made."""
    import harness.preprocess.internvl_dynamic as internvl

    def no_search(*args: object) -> None:
        raise AssertionError("candidate grids were searched")

    monkeypatch.setattr(internvl, "candidate_grids", no_search)
    with pytest.raises(ConfigError) as info:
        prepare_job(compose([*TINY[:3], *overrides]))  # dataset.num_images is no image_folder key
    assert says in str(info.value)


def test_tokens_refuses_max_tiles_100000_with_exit_2(tmp_path: Path) -> None:
    done = cli("harness.tokens", "encoder=internvit_300m", "preprocess=internvl_dynamic",
               "preprocess.max_tiles=100000", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "[1, 64]" in one_error_line(done.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    ["harness", "harness.tokens", "harness.benchmarks.mme.baseline", "harness.sweep", "harness.atlas", "harness.report",
     "harness.benchmarks.mme.scoring"],
)
def test_every_command_has_help(module: str, tmp_path: Path) -> None:
    done = cli(module, "--help", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and len(done.stdout.splitlines()) >= 3
    assert not (tmp_path / "results").exists()


# --- 2: resume trusts the data, and a skipped run says what its run said ---------------------

def image_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40 + i, 30), (10 * i, 80, 160)).save(root / f"img{i}.png")
    return root


def test_fingerprint_follows_the_data(tmp_path: Path) -> None:
    from harness.data import build_dataset

    folder = image_folder(tmp_path / "imgs", 2)
    first = build_dataset("image_folder", path=str(folder)).fingerprint()
    assert build_dataset("image_folder", path=str(folder)).fingerprint() == first
    image_folder(tmp_path / "imgs", 3)  # one more image
    added = build_dataset("image_folder", path=str(folder)).fingerprint()
    assert added != first
    Image.new("RGB", (99, 30)).save(folder / "img0.png")  # same name, other content
    os.utime(folder / "img0.png", ns=(1, 1))
    assert build_dataset("image_folder", path=str(folder)).fingerprint() != added
    syn = build_dataset("synthetic", num_images=3).fingerprint()
    assert syn == build_dataset("synthetic", num_images=3).fingerprint()
    assert syn != build_dataset("synthetic", num_images=3, seed=1).fingerprint()


def test_mme_fingerprints_follow_files_and_rows(tmp_path: Path) -> None:
    from harness.data import build_dataset
    from tests.helpers.data import mme_images, write_mme_parquet, write_mme_release

    images = mme_images()
    parquet = write_mme_parquet(tmp_path / "pq", images)
    a = build_dataset("mme", path=str(parquet)).fingerprint()
    assert a == build_dataset("mme", path=str(parquet)).fingerprint()
    write_mme_parquet(tmp_path / "pq", images[:-1])
    assert build_dataset("mme", path=str(parquet)).fingerprint() != a
    release = write_mme_release(tmp_path / "rel", images)
    b = build_dataset("mme", path=str(release)).fingerprint()
    extra = next(p for p in release.rglob("*.png"))
    os.utime(extra, ns=(5, 5))
    assert build_dataset("mme", path=str(release)).fingerprint() != b


def test_adding_images_makes_a_new_job_not_a_stale_skip(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "imgs", 2)
    common = ["encoder=clip_vit_l14_336", "encoder.size=tiny", "encoder.weights=random", "progress=false",
              "dataset=image_folder", f"dataset.path={folder}", f"results_dir={tmp_path / 'r'}", "study=fp"]
    first = run(common)
    assert run(common).status == "skipped"
    image_folder(folder, 3)
    again = run(common)
    assert again.status == "ok" and again.run_dir != first.run_dir
    assert len(RunStore(again.run_dir).records().query("kind == 'image'")) == 3


def test_a_skipped_run_reports_its_lost_images_again(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "imgs", 2)
    (folder / "broken.png").write_bytes(b"not an image")
    common = ["encoder=clip_vit_l14_336", "encoder.size=tiny", "encoder.weights=random", "progress=false",
              "dataset=image_folder", f"dataset.path={folder}", f"results_dir={tmp_path / 'r'}", "study=lost"]
    first = run(common)
    assert first.status == "lost_images" and first.failed
    second = run(common)
    assert second.status == "lost_images" and second.failed and second.run_dir == first.run_dir
    assert "skipped" in second.message and "broken.png" in second.message
    tolerant = run([*common, "max_error_fraction=0.5"])  # the same job, judged with today's tolerance
    assert tolerant.status == "skipped" and not tolerant.failed


def test_skipped_run_exits_as_its_run_did(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "imgs", 1)
    (folder / "broken.png").write_bytes(b"not an image")
    args = ["encoder.size=tiny", "encoder.weights=random", "progress=false", "dataset=image_folder",
            f"dataset.path={folder}", f"results_dir={tmp_path / 'r'}"]
    assert cli("harness", *args, cwd=tmp_path).returncode == 1
    again = cli("harness", *args, cwd=tmp_path)
    assert again.returncode == 1 and "skipped" in again.stdout + again.stderr


def test_unreadable_complete_run_is_redone_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}", "study=damaged"]
    first = run(common)
    (first.run_dir / RECORDS).write_bytes(b"PAR1 truncated")
    capsys.readouterr()
    again = run(common)
    assert again.status == "ok" and again.run_dir != first.run_dir
    err = capsys.readouterr().err
    assert f"warning: {first.run_dir}: records unreadable" in err and "running this job again" in err


# --- 8: results folders that cannot be written, leftovers -------------------------------------

def test_unwritable_results_folder_fails_before_the_model_loads(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = cli("harness", *TINY, f"results_dir={blocker / 'results'}", cwd=tmp_path)
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "not writable" in line and f"{blocker} is not a folder" in line


def test_a_write_failure_names_the_job_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while the run folder is written: one line with the job and the cause, and
    no temporary folder or `.part` file is left."""
    import errno

    from omegaconf import OmegaConf

    from harness.run import run_config

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    cfg = OmegaConf.create(compose(["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}", "study=full"]))
    outcome = run_config(cfg, multirun=False)
    assert outcome.status == "error:write" and outcome.failed
    assert outcome.message.startswith("clip_vit_l14_336/resize: cannot write")
    assert "No space left on device" in outcome.message and "\n" not in outcome.message
    assert not [p for p in (tmp_path / "runs" / "full").iterdir()]
    with pytest.raises(FolderError):
        RunStore(tmp_path / "runs" / "full" / "x").write([], {})
    # and a failure that cannot write its FAILED folder still says what failed
    failed = write_failure(compose([*TINY, f"results_dir={tmp_path}", "study=full"]), ValueError("boom"))
    assert failed.status == "error:exception" and "boom" in failed.message and "no FAILED folder" in failed.message


def test_leftovers_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    study = tmp_path / "runs" / "s"
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, pid in (("dead", dead.pid), ("live", os.getpid())):
        folder = study / f"{TMP_PREFIX}{name}"
        folder.mkdir(parents=True)
        (folder / "OWNER").write_text(f"{os.uname().nodename} {pid}")
        (folder / "records.parquet.part").write_text("half")
    removed = clean_leftovers(study, TMP_PREFIX)
    assert removed == [study / f"{TMP_PREFIX}dead"]
    assert (study / f"{TMP_PREFIX}live").exists()
    # a run in this study cleans them itself before it starts
    (study / f"{TMP_PREFIX}dead").mkdir()
    (study / f"{TMP_PREFIX}dead" / "OWNER").write_text(f"{os.uname().nodename} {dead.pid}")
    run(["encoder=clip_vit_l14_336", *TINY, f"results_dir={tmp_path}", "study=s"])
    assert not (study / f"{TMP_PREFIX}dead").exists()
    assert len(find_runs(study)) == 1 and (find_runs(study)[0] / COMPLETE).exists()
    assert not (find_runs(study)[0] / "OWNER").exists()


# --- 9: Ctrl-C and SIGTERM ---------------------------------------------------------------------

def wait_for(proc: subprocess.Popen, text: str, timeout: float = 240) -> str:
    """Read the merged output of a background command until `text` appears."""
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen[-2000:]
        char = proc.stdout.read(1)  # type: ignore[union-attr]
        assert char, f"ended before {text!r}: {seen[-2000:]}"
        seen += char
    return seen


@pytest.mark.slow
def test_ctrl_c_exits_130_in_one_line_and_rerun_resumes(tmp_path: Path) -> None:
    args = ["encoder.size=tiny", "encoder.weights=random", "progress=true", "dataset.num_images=400",
            f"results_dir={tmp_path}", "study=stop"]
    proc = cli("harness", *args, cwd=tmp_path, background=True)
    wait_for(proc, "img/s")
    os.kill(proc.pid, signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    assert "interrupted (Ctrl-C); finished runs are kept; run the same command again to resume" in rest
    assert find_runs(tmp_path) == []  # nothing half-written looks finished


@pytest.mark.slow
def test_sigterm_to_a_sweep_stops_its_jobs(tmp_path: Path) -> None:
    proc = cli("harness.sweep", "quickstart", "dataset.num_images=400", "progress=true", f"results_dir={tmp_path}",
               cwd=tmp_path, background=True)
    wait_for(proc, "img/s")

    def jobs() -> list[str]:  # the sweep's child `python -m harness ...` (its own process group)
        found = subprocess.run(["pgrep", "-f", f"results_dir={tmp_path}"], capture_output=True,
                               text=True).stdout.split()
        return [pid for pid in found if int(pid) != proc.pid]

    assert jobs()
    os.kill(proc.pid, signal.SIGTERM)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, rest
    assert "terminated (SIGTERM)" in rest
    assert jobs() == []


def test_the_writability_check_creates_nothing(tmp_path: Path) -> None:
    from harness.folders import check_writable

    check_writable(tmp_path / "results" / "runs" / "s")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("")
    with pytest.raises(FolderError, match="is not a folder"):
        check_writable(tmp_path / "f" / "results")
