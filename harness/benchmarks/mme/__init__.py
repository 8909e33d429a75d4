"""MME in one place: its subtasks and prompt texts (`subtasks`), the dataset loader (`data`),
the protocols (`prompts`), the official scoring and paper table (`scoring`), CLIP image-text
similarities (`clip_similarity`) and the encoder-only baseline command (`baseline`).
Rules and sources: docs/mme.md, docs/vlm_protocols.md."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.benchmarks import BENCHMARKS
from harness.benchmarks.base import Benchmark
from harness.benchmarks.mme.subtasks import IMAGES, SUBTASKS


@BENCHMARKS.register("mme")
class MMEBenchmark(Benchmark):
    """MME's two yes/no questions per image (`question_id` = the image), scored officially when
    the categories are MME's; any other yes/no pairs (the synthetic data) get the same yes/no
    accuracy without MME's totals."""

    task = "yes_no"
    main_metrics = ("mme_perception", "mme_cognition")
    main_label = "MME perception + cognition"

    def summarize(self, frame: pd.DataFrame, complete: bool = True,
                  ) -> tuple[dict[str, Any], list[tuple[str, float, str | None]]]:
        frame = frame[frame.groupby("question_id")["question_id"].transform("size") == 2]  # whole images only
        if frame.empty:
            return {}, []
        frame = frame.assign(answer=frame["answer"].astype(str), category=frame["category"].astype(str))
        values: dict[str, Any] = {}
        metrics: list[tuple[str, float, str | None]] = []
        is_mme = set(frame["category"]) <= set(SUBTASKS)
        if is_mme:
            result = self.scoring.score(frame)
            answered = {name: sub["n_images"] for name, sub in result["subtasks"].items()}
            values.update(mme_perception=result["perception"], mme_cognition=result["cognition"],
                          mme_total=result["total"],  # complete: every image of every subtask answered
                          mme_complete=complete and all(answered.get(name) == n for name, n in IMAGES.items()))
            for name, sub in result["subtasks"].items():
                values.update({f"mme_{name}": sub["score"], f"mme_{name}_acc": sub["acc"],
                               f"mme_{name}_acc_plus": sub["acc_plus"], f"mme_{name}_other": sub["other_num"]})
                metrics += [("mme_score", sub["score"], name), ("mme_acc", sub["acc"], name),
                            ("mme_acc_plus", sub["acc_plus"], name)]
            metrics += [("mme_perception", result["perception"], None), ("mme_cognition", result["cognition"], None)]
        frame = frame.assign(correct=frame["prediction"] == frame["answer"].str.lower())
        for name, group in [(None, frame), *([] if is_mme else frame.groupby("category"))]:
            acc = 100.0 * float(group["correct"].mean())
            acc_plus = 100.0 * float(group.groupby("question_id")["correct"].all().mean())
            metrics.append(("yes_no_score", acc + acc_plus, name))
            if name is None:
                values.update(yes_no_acc=acc, yes_no_acc_plus=acc_plus, yes_no_score=acc + acc_plus)
        values["other_answers"] = int((frame["prediction"] == "other").sum())
        return values, metrics
