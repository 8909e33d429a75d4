"""vlm wired into runs: question rows with every column, one encoding per image for both
questions, MME scored officially on the run row, error rows for the questions of a broken
image (and the score flagged incomplete), checks before loading (exit 2 naming what is missing),
placeholders = the encoder's token count for every layout a connector accepts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.config import ConfigError, compose
from harness.encoders import ENCODERS
from harness.pipeline.execute import execute
from harness.pipeline.job import prepare_job
from harness.runtime import Runtime
from harness.vlm import VLMS
from tests.helpers.checkpoints import tiny_internvl_folder
from tests.helpers.cli import cli
from tests.helpers.data import MMEImage, mme_images, write_mme_parquet

CPU = Runtime.resolve("cpu", "float32")
QUESTION_COLUMNS = ("question_id", "category", "question", "answer", "prompt", "response", "prediction",
                    "visual_tokens", "prompt_tokens", "prefill_ms", "decode_ms", "new_tokens")
INTERNVL_TINY = ["encoder=internvit_300m", "encoder.size=tiny", "encoder.weights=random", "preprocess=resize",
                 "vlm=internvl", "vlm.max_new_tokens=2", "progress=false"]


def compose_cfg(overrides: list[str]) -> dict:
    return compose(overrides)


def records_of(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "records.parquet")


class Broken(MMEImage):
    def encode(self) -> bytes:
        return b"not an image" * 8


@pytest.mark.slow
def test_mme_run_scores_officially_and_flags_broken_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [im for im in mme_images(2) if im.category in ("existence", "OCR", "code_reasoning")]
    bad = images[-1]
    images[-1] = Broken(bad.category, bad.file_name, bad.size, bad.colour, bad.questions)
    data = write_mme_parquet(tmp_path / "mme", images)
    calls: list[int] = []
    from harness.vlm.base import Answerer

    real = Answerer.answer_many

    def spy(self, visual, texts, **kw):
        calls.append(id(visual))
        return real(self, visual, texts, **kw)

    monkeypatch.setattr(Answerer, "answer_many", spy)
    cfg = compose_cfg([*INTERNVL_TINY, "dataset=mme", f"dataset.path={data}", f"results_dir={tmp_path / 'out'}"])
    outcome = execute(prepare_job(cfg))
    assert outcome.status == "lost_images", outcome.message  # written; the broken image is over max_error_fraction
    rec = records_of(outcome.run_dir)
    q = rec[rec.kind == "question"]
    assert len(q) == 2 * len(images)
    assert set(QUESTION_COLUMNS) <= set(q.columns)
    ok = q[q.status == "ok"]
    assert len(ok) == 2 * (len(images) - 1)
    # both questions of an image reuse one encoding: one call, one tensor per image
    assert len(calls) == len(ok) // 2 and len(set(calls)) == len(images) - 1
    images_ok = rec[(rec.kind == "image") & (rec.status == "ok")].set_index("image_id")["visual_tokens"]
    assert (ok["visual_tokens"].to_numpy() == images_ok.loc[ok["question_id"]].to_numpy()).all()
    assert (ok["visual_tokens"] == 256).all()  # resize: one 448 crop
    assert ok["prompt"].str.count("<IMG_CONTEXT>").eq(1).all()
    assert ok["prediction"].isin(["yes", "no", "other"]).all()
    broken = q[q.question_id == bad.id]
    assert len(broken) == 2 and broken.status.str.startswith("error:").all()
    run = rec[rec.kind == "run"].iloc[0]
    assert not run["answers_complete"] and run["n_question_errors"] == 2 and not run["mme_complete"]
    # the official score of the answered questions, recomputed here from the rows
    from harness.benchmarks.mme.scoring import score

    want = score(ok[["question_id", "category", "answer", "prediction"]])
    assert run["mme_perception"] == pytest.approx(want["perception"])
    assert run["mme_cognition"] == pytest.approx(want["cognition"])
    assert run["mme_existence"] == pytest.approx(want["subtasks"]["existence"]["score"])
    metrics = rec[(rec.kind == "metric") & (rec.metric == "mme_score")]
    assert set(metrics["category"]) == {"existence", "OCR", "code_reasoning"}
    assert run["vlm"] == "internvl" and run["vlm_weights"] == "random" and run["kv_cache_mb_max"] > 0


def test_vlm_none_keeps_encoder_only_resume_keys() -> None:
    base = ["encoder.size=tiny", "encoder.weights=random"]
    cfg = compose_cfg(base)
    plain = {k: v for k, v in cfg.items() if k != "vlm"}
    assert prepare_job(cfg).config_hash == prepare_job(plain).config_hash
    llava = ["encoder.connector=llava_next", "preprocess=llava_anyres", "vlm=llava_next"]
    with_vlm = prepare_job(compose_cfg([*base, *llava]))
    assert with_vlm.config_hash != prepare_job(compose_cfg([*base, *llava[:2]])).config_hash
    # a null max_new_tokens is the protocol's: the same job as saying 16
    assert with_vlm.config_hash == prepare_job(compose_cfg([*base, *llava, "vlm.max_new_tokens=16"])).config_hash
    assert with_vlm.identity("r")["config_label"].endswith("+llava_next")


@pytest.mark.parametrize("overrides,needle", [
    (["encoder=clip_vit_l14_336", "vlm=internvl"], "set encoder.connector=internvl"),
    (["encoder=internvit_300m", "vlm=internvl", "encoder.out_dim=64"], "is 48 wide"),
    (["encoder=internvit_300m", "vlm=internvl", "vlm.protocol=nope"], "valid choices: official"),
    (["encoder=internvit_300m", "vlm=internvl", "vlm.size=huge"], "tiny, full"),
])
def test_bad_vlm_config_fails_before_loading(overrides: list[str], needle: str) -> None:
    cfg = compose_cfg(["encoder.size=tiny", "encoder.weights=random", *overrides])
    with pytest.raises(ConfigError, match=needle):
        prepare_job(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("what,needle", [("lm", "no language-model tensors"), ("tokenizer", "no tokenizer")])
def test_checkpoint_without_lm_or_tokenizer_exits_2(tmp_path: Path, what: str, needle: str) -> None:
    folder = tiny_internvl_folder(tmp_path / "ckpt", lm=what != "lm", tokenizer=what != "tokenizer")
    res = cli("harness", "encoder=internvit_300m", "encoder.size=tiny", f"encoder.weights={folder}", "vlm=internvl",
              "preprocess=resize", f"results_dir={tmp_path / 'out'}", "progress=false", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


SIZES = [(1, 1), (13, 4000), (4000, 13), (336, 336), (704, 396), (1920, 1080), (500, 2000), (640, 480)]


@pytest.mark.parametrize("family", VLMS.names())
def test_placeholders_equal_the_encoders_count_for_every_accepted_layout(family: str) -> None:
    from harness.preprocess import STRATEGIES, build_strategy

    answerer = VLMS.get(family)(runtime=CPU)
    enc = ENCODERS.get(answerer.encoder)
    text = answerer.tokenize("Is it red?", 0).ids.numel()  # the prompt around its image positions
    seen = set()
    for name in STRATEGIES.names():
        tile = {} if STRATEGIES.get(name).variable_size else {"tile_size": enc.tile_size}  # qwen_native: own size
        params = tile | ({"max_tiles": 6} if name == "internvl_dynamic" else {})
        strategy = build_strategy(name, **params)
        for w, h in SIZES:
            try:  # qwen_native refuses ratios over 200, as Qwen2-VL does
                layout = strategy.plan(w, h)
                enc.check_layout(layout, answerer.connector)
            except ValueError:
                continue
            n = enc.count_tokens(layout, answerer.connector)
            prompt = answerer.tokenize("Is it red?", n)
            assert int(prompt.image_mask.sum()) == n
            assert prompt.ids.numel() == text + n
            seen.add(name)
    assert answerer.strategy in seen  # the family's own processor's layouts among them


def test_answer_rejects_tokens_of_the_wrong_width() -> None:
    answerer = VLMS.get("llava_next")(runtime=CPU)
    with pytest.raises(ValueError, match="48"):
        answerer.answer(torch.zeros(4, 32), "Is it red?")


def _tiny_llava_next_folder(folder: Path) -> Path:
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    from harness.encoders.clip_vit import CLIP_TINY

    tok = VLMS.get("llava_next").random_tokenizer()
    config = LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", **CLIP_TINY},
        text_config={"model_type": "mistral", "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12, "vocab_size": 320},
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default")
    LlavaNextForConditionalGeneration(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava_next", "internvl"])
def test_the_issue_command_runs_on_a_tiny_checkpoint_folder(tmp_path: Path, family: str) -> None:
    """`python -m harness encoder=... encoder.weights=<folder> ... vlm=<family>`: encoder and
    language model both from one save_pretrained folder, questions answered, run row scored."""
    if family == "llava_next":
        folder = _tiny_llava_next_folder(tmp_path / "ckpt")
        args = ["encoder=clip_vit_l14_336", "encoder.connector=llava_next", "preprocess=llava_anyres"]
    else:
        folder = tiny_internvl_folder(tmp_path / "ckpt")
        args = ["encoder=internvit_300m", "preprocess=internvl_dynamic", "preprocess.max_tiles=2"]
    res = cli("harness", *args, "encoder.size=tiny", f"encoder.weights={folder}", f"vlm={family}",
              "vlm.max_new_tokens=3", "dataset=synthetic", "dataset.num_images=2", f"results_dir={tmp_path / 'out'}",
              "progress=false", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (run_dir,) = (tmp_path / "out" / "runs" / "default").iterdir()
    rec = records_of(run_dir)
    q = rec[rec.kind == "question"]
    assert len(q) == 4 and (q.status == "ok").all() and (q.new_tokens <= 3).all()
    run = rec[rec.kind == "run"].iloc[0]
    assert run["vlm_weights_source"] == str(folder) and run["weights_source"] == str(folder)
    assert run["answers_complete"] and run["yes_no_score"] >= 0
