"""A tiny offline MMBench run under `vlm.protocol=vlmevalkit` writes each question's prompt in the
family's own style (InternVL: VLMEvalKit's `build_multi_choice_prompt`; Qwen2.5-VL: the dataset's
generic prompt, as VLMEvalKit registers it) in its rows' `prompt` column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.benchmarks.mmbench.prompts import vlmevalkit, vlmevalkit_llava_internvl
from harness.config import compose
from harness.pipeline.execute import execute
from harness.pipeline.job import prepare_job
from tests.helpers.benchmarks import write_mmbench_parquet

FAMILIES = {  # vlm -> its own encoder and preprocessing at tiny size, and the prompt it must get
    "internvl": (["encoder=internvit_300m", "preprocess=resize"], vlmevalkit_llava_internvl),
    "qwen2_5_vl": (["encoder=qwen2_5_vl_vit", "preprocess=qwen_native", "preprocess.max_pixels=50176"], vlmevalkit),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_mmbench_rows_hold_the_familys_prompt(family: str, tmp_path: Path) -> None:
    encoder, builder = FAMILIES[family]
    data = write_mmbench_parquet(tmp_path / "mmbench", copies=False)
    cfg = compose([*encoder, "encoder.size=tiny", "encoder.weights=random", f"vlm={family}",
                   "vlm.protocol=vlmevalkit", "vlm.max_new_tokens=2", "dataset=mmbench", f"dataset.path={data}",
                   f"results_dir={tmp_path / 'out'}", "progress=false"])
    outcome = execute(prepare_job(cfg))
    rows = pd.read_parquet(outcome.run_dir / "records.parquet")
    questions = rows[(rows.kind == "question") & (rows.status == "ok")]
    assert len(questions) == 6  # 4 + 2 rotations of the two questions
    for _, row in questions.iterrows():
        fields = {"question": row["question"], "options": json.loads(row["options"]),
                  **json.loads(row["fields"])}
        user_text = builder(fields)
        assert row["prompt"].count(user_text) == 1, (row["prompt"], user_text)
    # the hint of question 1 is in the style's place ("Look up.\n" vs "Hint: Look up.\n")
    hinted = questions[questions["question"] == "Is the sky above?"]["prompt"]
    want = "Look up.\nIs the sky above?\n" if family == "internvl" else "Hint: Look up.\nQuestion: Is the sky above?\n"
    assert hinted.str.contains(want, regex=False).all()
