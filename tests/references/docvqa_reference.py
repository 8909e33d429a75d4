# ruff: noqa  -- kept verbatim (quirks included); style fixes would stop it being a transcription
"""Faithful transcription of lmms-eval's DocVQA scoring, kept as the tests' reference.

Sources (EvolvingLMMs-Lab/lmms-eval at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3):
- `lmms_eval/api/metrics.py`: `levenshtein_distance` and the `anls` metric, verbatim (its docstring
  names Qwen-VL's `eval_mm/infographicsvqa_eval.py` as the origin).
- `lmms_eval/tasks/docvqa/docvqa_val.yaml` + `_default_template_docvqa_yaml`: metric `anls`,
  `doc_to_target: "answers"`, no task `process_results`, so `Task.process_results`
  (`lmms_eval/api/task.py`) strips the response and calls `anls(references=answers,
  predictions=[response])` (`score_one` below); `docvqa_doc_to_text` from `tasks/docvqa/utils.py`.
"""


def levenshtein_distance(s1, s2):
    if len(s1) > len(s2):
        s1, s2 = s2, s1

    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        distances_ = [i2 + 1]
        for i1, c1 in enumerate(s1):
            if c1 == c2:
                distances_.append(distances[i1])
            else:
                distances_.append(1 + min((distances[i1], distances[i1 + 1], distances_[-1])))
        distances = distances_
    return distances[-1]


def anls(
    references,
    predictions,
    thresh_hold=0.5,
):
    """https://github.com/QwenLM/Qwen-VL/blob/master/eval_mm/infographicsvqa_eval.py"""
    values = []
    # Unwrap predictions if it's a nested list
    pred = predictions[0] if isinstance(predictions[0], str) else predictions[0][0]

    for answer in references:
        # preprocess both the answers - gt and prediction
        gt_answer = " ".join(answer.strip().lower().split())
        det_answer = " ".join(pred.strip().lower().split())

        dist = levenshtein_distance(gt_answer, det_answer)
        length = max(len(answer.upper()), len(pred.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))

    question_result = 1 - min(values)

    if question_result < thresh_hold:
        question_result = 0
    return {"anls": question_result}


def score_one(answers, raw_response):
    """`Task.process_results` for a generate_until task without its own process_results."""
    result = [res.strip() if res is not None else "" for res in [raw_response]]
    gold = list(answers)
    return anls(references=gold, predictions=result)["anls"]


def docvqa_doc_to_text(doc, lmms_eval_specific_kwargs):
    question = doc["question"]
    pre_prompt = lmms_eval_specific_kwargs["pre_prompt"]
    post_prompt = lmms_eval_specific_kwargs["post_prompt"]
    return f"{pre_prompt}{question}{post_prompt}"


# `_default_template_docvqa_yaml`, lmms_eval_specific_kwargs.default
DOCVQA_DEFAULT_KWARGS = {"pre_prompt": "", "post_prompt": "\nAnswer the question using a single word or phrase."}
