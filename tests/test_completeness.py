"""Issue 22, items 1-4: nothing that failed is recorded as done. Failed answers count like
failed images and a run that answered nothing is FAILED (exit 1, redone on resume); an MME
release folder that lost an image is refused and `mme_complete` means all 2374 questions; every
number is range-checked before loading, naming its key; a VLM on a dataset without questions is
refused before loading."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.benchmarks import get_benchmark
from harness.config import ConfigError, compose
from harness.mme.subtasks import IMAGES
from harness.pipeline.execute import run
from harness.pipeline.job import prepare_job
from harness.pipeline.store import COMPLETE, ERROR, FAILED, RunStore, find_runs
from harness.types import Record
from harness.vlm.base import Answer, Answerer
from harness.vlm.internvl import CHAT_TEMPLATE, InternVLAnswerer
from harness.vlm.records import answer_summary
from tests.helpers.cli import cli
from tests.helpers.data import mme_images, write_mme_release

TINY = ["encoder.size=tiny", "encoder.weights=random", "progress=false"]
VLM = [*TINY, "encoder=internvit_300m", "preprocess=resize", "vlm=internvl", "vlm.max_new_tokens=2",
       "dataset.num_images=2"]
# InternVL's template with its image line left out: the prompt has no image placeholder.
NO_IMAGE_TEMPLATE = CHAT_TEMPLATE.replace("{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}{% elif",
                                          "{% if")


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building any vision backbone or language model fails the test."""
    from transformers import AutoModelForCausalLM

    from harness.encoders import ENCODERS

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    for name in ENCODERS.names():
        monkeypatch.setattr(ENCODERS.get(name), "build_backbone", no_model)
    monkeypatch.setattr(AutoModelForCausalLM, "from_config", no_model)


# --- 1: a run whose answers failed is not a success -------------------------------------------

def test_a_template_without_the_image_placeholder_fails_the_run_and_resume_redoes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert NO_IMAGE_TEMPLATE != CHAT_TEMPLATE
    real = InternVLAnswerer.random_tokenizer.__func__  # type: ignore[attr-defined]

    def no_placeholder(cls: type) -> object:
        tokenizer = real(cls)
        tokenizer.chat_template = NO_IMAGE_TEMPLATE
        return tokenizer

    monkeypatch.setattr(InternVLAnswerer, "random_tokenizer", classmethod(no_placeholder))
    common = [*VLM, f"results_dir={tmp_path}", "study=noanswer", "max_error_fraction=1.0"]
    first = run(common)
    assert first.status == "error:no_answer" and first.failed  # even with every failure tolerated
    assert first.message == ("all 4 questions failed: error:answer x4 (first: synthetic/0/000000: ValueError: "
                             "internvl: the chat template wrote 0 <IMG_CONTEXT> placeholders, not 1)")
    assert first.message.count("chat template") == 1  # the cause once, not once per question
    assert (first.run_dir / FAILED).exists() and not (first.run_dir / COMPLETE).exists()
    row = RunStore(first.run_dir).records().iloc[0]
    assert (row["status"], row["n_questions"], row["n_question_errors"], row["n_ok"]) == ("error:no_answer", 4, 4, 2)
    details = (first.run_dir / ERROR).read_text().splitlines()
    assert len(details) == 4 and all(ln.startswith("question synthetic/0/00000") for ln in details)
    assert find_runs(tmp_path / "runs" / "noanswer") == []
    again = run(common)  # not complete, so resume computes it again
    assert again.status == "error:no_answer" and again.run_dir != first.run_dir


def test_question_failures_count_toward_max_error_fraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One answer of four fails to allocate: over max_error_fraction=0 the run is written but
    reported lost (exit 1), and judged the same when resumed; 0.25 tolerates it."""
    real = Answerer.answer
    calls: list[int] = []

    def first_fails(self: Answerer, visual: torch.Tensor, question: str, **kw: object) -> Answer:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: not enough memory")
        return real(self, visual, question, **kw)

    monkeypatch.setattr(Answerer, "answer", first_fails)
    # one question at a time, so that each goes through `answer` (the batched path isolates a
    # failing question the same way: tests/test_vlm_batched.py)
    common = [*VLM, f"results_dir={tmp_path}", "study=lost", "vlm.batch_questions=1", "vlm.share_prefix=false"]
    with caplog.at_level(logging.INFO, logger="harness"):
        first = run(common)
    assert first.status == "lost_answers" and first.failed
    assert first.message == ("1 of 4 questions failed (max_error_fraction=0.0): error:answer x1 (first: "
                             "synthetic/0/000000: RuntimeError: [enforce fail at alloc_cpu.cpp:116] "
                             "DefaultCPUAllocator: not enough memory)")
    assert (first.run_dir / COMPLETE).exists()  # the answers that worked are kept
    assert "2 images (0 errors), 4 questions (1 errors)" in caplog.text
    resumed = run(common)
    assert resumed.status == "lost_answers" and resumed.run_dir == first.run_dir
    assert "skipped" in resumed.message and "1 of 4 questions failed" in resumed.message
    assert run([*common, "max_error_fraction=0.25"]).status == "skipped"
    assert len(calls) == 4  # resumed twice, never recomputed


@pytest.mark.slow
def test_a_checkpoint_whose_template_lost_the_placeholder_exits_1(tmp_path: Path) -> None:
    """The issue's case on the command line: a checkpoint folder whose chat_template.jinja has no
    image placeholder. Exit 1, how many questions failed and why (once), no COMPLETE folder."""
    from tests.helpers.checkpoints import tiny_internvl_folder

    folder = tiny_internvl_folder(tmp_path / "ckpt")
    (folder / "chat_template.jinja").write_text(NO_IMAGE_TEMPLATE)
    done = cli("harness", "encoder=internvit_300m", "encoder.size=tiny", f"encoder.weights={folder}", "vlm=internvl",
               "vlm.max_new_tokens=2", "preprocess=resize", "dataset.num_images=2", "progress=false",
               f"results_dir={tmp_path / 'out'}", "study=ckpt", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    summary = done.stderr[done.stderr.index("error: jobs failed"):]
    assert "error:no_answer: all 4 questions failed: error:answer x4" in summary
    assert summary.count("wrote 0 <IMG_CONTEXT> placeholders") == 1
    assert find_runs(tmp_path / "out") == [] and len(list((tmp_path / "out" / "runs" / "ckpt").glob("*"))) == 1


def test_a_run_that_encoded_no_image_is_failed_not_complete(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not an image")
    (folder / "b.png").write_bytes(b"nor this")
    common = [*TINY, "dataset=image_folder", f"dataset.path={folder}", f"results_dir={tmp_path / 'r'}",
              "max_error_fraction=1.0"]
    outcome = run(common)
    assert outcome.status == "error:no_image" and outcome.failed
    assert outcome.message.startswith(f"no image could be encoded: error:undecodable x2 (first: {folder / 'a.png'}: ")
    assert (outcome.run_dir / FAILED).exists() and find_runs(tmp_path / "r") == []


# --- 2: MME release folders lose nothing silently ------------------------------------------------

def test_a_release_question_file_without_its_image_is_refused_before_loading(tmp_path: Path) -> None:
    images = [im for im in mme_images(2) if im.category in ("OCR", "artwork")]
    root = write_mme_release(tmp_path / "mme", images)
    ocr = next(im for im in images if im.category == "OCR")
    (root / "OCR" / ocr.file_name).unlink()  # the .txt stays
    txt = root / "OCR" / (Path(ocr.file_name).stem + ".txt")
    assert txt.exists()
    with pytest.raises(ConfigError, match=f"no image for the questions of {txt}"):
        prepare_job(compose([*TINY, "dataset=mme", f"dataset.path={root}"]))
    art = next(im for im in images if im.category == "artwork")  # the split layout too
    (root / "OCR" / txt.name).unlink()
    (root / "artwork" / "images" / art.file_name).unlink()
    with pytest.raises(ConfigError, match="questions_answers_YN/" + Path(art.file_name).stem + ".txt"):
        prepare_job(compose([*TINY, "dataset=mme", f"dataset.path={root}"]))


@pytest.mark.slow
def test_a_release_question_file_without_its_image_exits_2(tmp_path: Path) -> None:
    images = [im for im in mme_images(1) if im.category in ("OCR", "existence")]
    root = write_mme_release(tmp_path / "mme", images)
    ocr = next(im for im in images if im.category == "OCR")
    (root / "OCR" / ocr.file_name).unlink()
    done = cli("harness", *TINY, "dataset=mme", f"dataset.path={root}", f"results_dir={tmp_path / 'out'}",
               cwd=tmp_path)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "no image for the questions of" in line and Path(ocr.file_name).stem + ".txt" in line
    assert not (tmp_path / "out" / "runs").exists()


def _answered(n_images: dict[str, int]) -> list[Record]:
    """Question rows of a run that answered `n` images of each subtask, both questions, correctly."""
    rows = []
    for category, n in n_images.items():
        for i in range(n):
            for k, truth in enumerate(("Yes", "No")):
                rows.append(Record("question", {}, image_id=f"{category}/{i:04d}.jpg", values={
                    "question_id": f"{category}/{i:04d}.jpg", "question_index": k, "category": category,
                    "question": "q", "answer": truth, "prediction": truth.lower(), "new_tokens": 1,
                    "prompt_tokens": 9, "kv_cache_mb": 0.1, "prefill_ms": 1.0, "decode_ms": 1.0}))
    return rows


def test_mme_complete_only_when_all_2374_questions_were_answered() -> None:
    MME = get_benchmark("mme")
    full = _answered(IMAGES)
    assert len(full) == 2374 and sum(IMAGES.values()) == 1187
    summary, _ = answer_summary(full, {}, MME)
    assert summary["mme_complete"] and summary["mme_perception"] == 2000 and summary["mme_cognition"] == 800
    one_short = _answered({**IMAGES, "OCR": IMAGES["OCR"] - 1})  # OCR_0019 gone from the copy
    summary, _ = answer_summary(one_short, {}, MME)
    assert summary["answers_complete"] and not summary["mme_complete"]
    failed = list(full)
    failed[0] = Record("question", {}, image_id=failed[0].image_id, status="error:answer", message="x",
                       values={k: failed[0].values[k] for k in ("question_id", "question_index", "category")})
    summary, _ = answer_summary(failed, {}, MME)
    assert not summary["answers_complete"] and not summary["mme_complete"]


# --- 3: every number has a range, checked before any model loads --------------------------------

@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["vlm.max_new_tokens=abc"], "vlm.max_new_tokens must be an integer in [1, 4096]; got 'abc'"),
        (["vlm.max_new_tokens=1e30"], "vlm.max_new_tokens must be an integer in [1, 4096]; got 1e+30"),
        (["vlm.max_new_tokens=1000000000"], "vlm.max_new_tokens must be an integer in [1, 4096]"),
        (["vlm.max_new_tokens=1.5"], "vlm.max_new_tokens must be an integer in [1, 4096]; got 1.5"),
        (["vlm.max_new_tokens=true"], "vlm.max_new_tokens must be an integer in [1, 4096]; got True"),
        (["vlm.max_new_tokens=0"], "vlm.max_new_tokens must be an integer in [1, 4096]; got 0"),
        (["timing_repeats=0"], "timing_repeats must be an integer in [1, 100]; got 0"),
        (["timing_repeats=1.5"], "timing_repeats must be an integer in [1, 100]; got 1.5"),
        (["timing_repeats=true"], "timing_repeats must be an integer in [1, 100]; got True"),
        (["timing_repeats=1e30"], "timing_repeats must be an integer in [1, 100]; got 1e+30"),
        (["timing_repeats=abc"], "timing_repeats must be an integer in [1, 100]; got 'abc'"),
        (["batch_images=1.5"], "batch_images must be an integer in [1, 4096]; got 1.5"),
        (["batch_images=1e30"], "batch_images must be an integer in [1, 4096]"),
    ],
)
def test_vlm_and_run_numbers_are_refused_before_loading(
    overrides: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_models(monkeypatch)
    with pytest.raises(ConfigError) as info:
        prepare_job(compose([*VLM, *overrides]))
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["preprocess.max_pixels=1e30"], "preprocess.max_pixels must be an integer in [1, 12845056]; got 1e+30"),
        (["preprocess.max_pixels=12845084"], "preprocess.max_pixels must be an integer in [1, 12845056]"),
        (["preprocess.max_pixels=1003520.5"], "preprocess.max_pixels must be an integer"),
        (["preprocess.min_pixels=true"], "preprocess.min_pixels must be an integer in [1, 1003520]; got True"),
        (["preprocess.min_pixels=2000000"], "preprocess.min_pixels must be an integer in [1, 1003520]"),
        (["preprocess.min_pixels=abc"], "preprocess.min_pixels must be an integer"),
        (["preprocess.merge_size=1e30"], "preprocess.merge_size must be an integer"),
    ],
)
def test_native_pixel_budgets_are_bounded(overrides: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        prepare_job(compose([*TINY, "encoder=qwen2_5_vl_vit", "preprocess=qwen_native", *overrides]))
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["preprocess=llava_anyres", "preprocess.grid_pinpoints=[[336.5,672]]"], "grid_pinpoints must be"),
        (["preprocess=llava_anyres", "preprocess.grid_pinpoints=[[true,336]]"], "grid_pinpoints must be"),
        (["reduce=cls_topk", "reduce.keep=abc"], "reduce.keep must be an integer >= 1; got 'abc'"),
        (["reduce=cls_topk", "reduce.keep=16.5"], "reduce.keep must be an integer >= 1; got 16.5"),
        (["reduce=prumerge", "reduce.ratio=abc"], "reduce.ratio must be in (0, 0.5], got 'abc'"),
    ],
)
def test_integers_are_refused_not_truncated_and_text_names_the_key(overrides: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        prepare_job(compose([*TINY, *overrides]))
    assert says in str(info.value)


def test_a_pinpoint_written_as_a_whole_float_is_the_same_job() -> None:
    """1008.0 is an integer written with a point (what YAML makes of `1008.0`): kept, not refused."""
    a = prepare_job(compose([*TINY, "preprocess=llava_anyres", "preprocess.grid_pinpoints=[[336,1008.0]]"]))
    b = prepare_job(compose([*TINY, "preprocess=llava_anyres", "preprocess.grid_pinpoints=[[336,1008]]"]))
    assert a.strategy.grid_pinpoints == [[336, 1008]] and a.config_hash == b.config_hash


@pytest.mark.parametrize(("n_sizes", "says"), [("0", "--n-sizes must be an integer in [1, 3000]; got 0"),
                                               ("100000", "--n-sizes must be an integer in [1, 3000]; got 100000")])
def test_atlas_n_sizes_is_bounded(n_sizes: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from harness import atlas

    assert atlas.main(["--n-sizes", n_sizes, "--out", str(tmp_path / "tables")]) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {says}"
    assert not (tmp_path / "tables").exists()


def test_atlas_block_numbers_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import atlas

    block = {"min_side": 32, "max_side": 4096, "n_sizes": 1000, "encoders": [], "strategies": {}}
    monkeypatch.setattr(atlas, "experiment_config", lambda name: {"atlas": {**block, "max_side": 1e30}})
    with pytest.raises(ConfigError, match=r"atlas.max_side must be an integer in \[1, 100000\]"):
        atlas.load_spec("token_atlas")
    monkeypatch.setattr(atlas, "experiment_config", lambda name: {"atlas": {**block, "min_side": 5000}})
    with pytest.raises(ConfigError, match=r"atlas.min_side must be an integer in \[1, 4096\]"):
        atlas.load_spec("token_atlas")
    monkeypatch.setattr(atlas, "experiment_config", lambda name: {"atlas": dict(block)})
    assert atlas.load_spec("token_atlas", 20)["n_sizes"] == 20


# --- 4: pairings refused before loading ------------------------------------------------------

def test_a_vlm_on_a_dataset_without_questions_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (40, 30)).save(folder / "a.png")
    no_models(monkeypatch)
    overrides = [o for o in VLM if not o.startswith("dataset.")]
    with pytest.raises(ConfigError, match=r"vlm=internvl answers questions, but dataset 'image_folder' has none: "
                                          r"use a dataset with questions \(chartqa, docvqa, mmbench, mme, pope, "
                                          r"synthetic, textvqa\) or vlm=none"):
        prepare_job(compose([*overrides, "dataset=image_folder", f"dataset.path={folder}"]))
    assert prepare_job(compose(VLM)).answerer_cls is InternVLAnswerer  # synthetic has questions
    plain = prepare_job(compose([*TINY, "dataset=image_folder", f"dataset.path={folder}"]))
    assert plain.answerer_cls is None  # encoder only: no questions needed


def test_failed_rows_are_listed_by_cause_once() -> None:
    from harness.pipeline.failures import causes, lost

    assert causes(["error:answer", "error:oom", "error:answer"], ["a  b\nc", "m", "other"]) == (
        "error:answer x2 (first: a b c); error:oom x1 (first: m)")
    frame = pd.DataFrame({"kind": ["image", "image", "question", "question", "question", "question"],
                          "image_id": ["i", "j", "i", "i", "j", "j"],
                          "status": ["ok", "ok", "ok", "error:answer", "ok", "ok"],
                          "message": ["", "", "", "boom", "", ""]})
    assert lost(frame, 0.25) == ("", "")
    assert lost(frame, 0.2) == ("lost_answers", "1 of 4 questions failed (max_error_fraction=0.2): "
                                                "error:answer x1 (first: boom)")
