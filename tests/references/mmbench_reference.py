# ruff: noqa  -- kept verbatim (quirks included); style fixes would stop it being a transcription
"""Faithful transcription of MMBench's prompts, option matching and circular evaluation, kept as the
tests' reference.

Sources:
- open-compass/VLMEvalKit at commit e8e78f05f3080fe28154f2130321f17951c3be94:
  `vlmeval/utils/matching_util.py` (`can_infer_option`, `can_infer_text`, `can_infer`, verbatim; the
  logger replaced by a no-op), `vlmeval/dataset/utils/multiple_choice.py` (`build_choices`,
  `prefetch_answer`, `prefetch_circular_group`, verbatim; the exact-matching stage of
  `extract_answer_from_item` and `mcq_circular_eval`, and `report_acc`'s Overall/category lines,
  transcribed without their file and judge plumbing), `vlmeval/tools.py` (`CIRCULAR`: `proc_str`,
  `abnormal_entry` and the rotation, for one question), `vlmeval/dataset/image_mcq.py`
  (`ImageMCQDataset.build_prompt`, text part); the LLaVA / InternVL wrappers' own MCQ prompt is
  transcribed once, in vlmevalkit_prompts_reference.py.
- EvolvingLMMs-Lab/lmms-eval at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3:
  `lmms_eval/tasks/mmbench/en_utils.py` `mmbench_doc_to_text` and `mmbench_evals.py`
  `create_options_prompt` (sys_prompt "There are several options:" from `mmbench.yaml`),
  post_prompt from `_default_template_mmbench_en_yaml`.
"""

import copy as cp
import os
import re
import string
from collections import deque

import numpy as np
import pandas as pd


class _NoLog:
    def info(self, *a, **k):
        pass

    warning = info


logger = _NoLog()

# Matches verbose chain-of-thought answers such as:
#   "The correct answer is **B**. Here's why: ..."
#   "The answer is C."
_VERBOSE_ANSWER_RE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def can_infer_option(answer, choices):
    verbose = os.environ.get('VERBOSE', 0)
    # Choices is a dictionary
    if 'Failed to obtain answer via API' in answer:
        return False

    reject_to_answer = [
        "Sorry, I can't help with images of people yet.", "I can't process this file.",
        "I'm sorry, but without the image provided", 'Cannot determine the answer'
    ]
    for err in reject_to_answer:
        if err in answer:
            return 'Z'

    def count_choice(splits, choices, prefix='', suffix=''):
        cnt = 0
        for c in choices:
            if prefix + c + suffix in splits:
                cnt += 1
        return cnt

    answer_mod = cp.copy(answer)
    chars = '.()[],:;!*#{}'
    for c in chars:
        answer_mod = answer_mod.replace(c, ' ')

    splits = [x.strip() for x in answer_mod.split()]
    count = count_choice(splits, choices)

    if count == 1:
        for ch in choices:
            if 'A' in splits and len(splits) > 3 and verbose:
                logger.info(f'A might be a quantifier in the string: {answer}.')
                return False
            if ch in splits and splits.index(ch) > (len(splits) - 5):
                return ch
    elif count == 0 and count_choice(splits, {'Z', ''}) == 1:
        return 'Z'

    match = _VERBOSE_ANSWER_RE.search(answer or "")
    if match and match.group(1).upper() in choices:
        return match.group(1).upper()

    return False


def can_infer_text(answer, choices):
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    assert isinstance(choices, dict)
    for k in choices:
        assert k in string.ascii_uppercase
        choices[k] = str(choices[k]).lower()
    cands = []
    for k in choices:
        if choices[k] in answer:
            cands.append(k)
    if len(cands) == 1:
        return cands[0]
    return False


def can_infer(answer, choices):
    answer = str(answer)
    copt = can_infer_option(answer, choices)
    return copt if copt else can_infer_text(answer, choices)


def build_choices(item):
    ret = {}
    for ch in string.ascii_uppercase:
        if ch in item and (not pd.isna(item[ch])):
            ret[ch] = item[ch]
    return ret


def prefetch_answer(item):
    choices = build_choices(item)
    return can_infer(item['prediction'], choices)


def prefetch_circular_group(sub_data, verbose=False):
    lt = len(sub_data)
    GT, PRED = [], []
    for i in range(lt):
        item = sub_data.iloc[i]
        GT.append(item['GT'])
        PRED.append(prefetch_answer(item))
        if PRED[-1] and (GT[-1] != PRED[-1]):
            log = (
                f'Failed in Prefetching Rolling {i}: Answer is {GT[-1]}, '
                f"Prediction is {item['prediction']}, Pre-fetched is {PRED[-1]}. "
            )
            return dict(hit=0, log=log)
    flag = True
    for g, p in zip(GT, PRED):
        if g != p:
            flag = False
    ret = (dict(hit=1, log='Succeed During Pre-fetching'), ) if flag else (None, )
    ret = ret + (GT, PRED) if verbose else ret
    return ret if len(ret) > 1 else ret[0]


def extract_answer_exact_matching(item):
    """`extract_answer_from_item(model=None, item)`: the prefetch, else 'Z' (no judge under exact_matching)."""
    choices = build_choices(item)
    ret = can_infer(item['prediction'], choices)
    if ret:
        return dict(opt=ret, log=item['prediction'])
    return dict(opt='Z', log='Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy.')


def mcq_circular_eval_exact_matching(data):
    """`mcq_circular_eval` with model None: `data` holds every rotation with its own `answer`
    (the meta's answer map) and `prediction`; returns {g_index: hit}."""
    data = data.copy()
    data['g_index'] = [int(x % 1e6) for x in data['index']]
    data['GT'] = list(data['answer'])
    data_main = data[data['index'] == data['g_index']]
    result = {}
    for i in range(len(data_main)):
        idx = data_main.iloc[i]['index']
        sub_data = data[data['g_index'] == idx]
        pf = prefetch_circular_group(sub_data, verbose=False)
        if pf is not None:
            result[idx] = pf
        else:
            result[idx] = dict(
                hit=0, log='Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy.')
    return {k: v['hit'] for k, v in result.items()}


def report_acc_overall_and_category(df):
    """`report_acc` for a frame without `split` / `l2-category`: Overall and per-category mean hit."""
    res = {'Overall': np.mean(df['hit'])}
    abilities = list(set(df['category']))
    abilities.sort()
    for ab in abilities:
        res[ab] = np.mean(df[df['category'] == ab]['hit'])
    return res


def circular_rows(item, OFFSET=1e6):
    """`vlmeval/tools.py` `CIRCULAR` for one question (a dict with A.. option columns, `answer`, `index`)."""

    def proc_str(s):
        chs = set(s)
        chs = [x for x in chs if x not in string.ascii_letters and x != ' ']
        for ch in chs:
            s = s.replace(ch, ' ')
        return s

    def abnormal_entry(line):
        choices = {k: line[k] for k in string.ascii_uppercase if k in line and not pd.isna(line[k])}
        has_label = False
        for k in choices:
            s = proc_str(choices[k]).split()
            hit_words = [x for x in s if x in choices]
            hit_words = set(hit_words)
            if len(hit_words) > 1:
                return True
            if choices[k] in string.ascii_uppercase:
                has_label = True
        return has_label

    this_n_opt = 0
    for j, ch in enumerate(string.ascii_uppercase):
        if ch in item and not pd.isna(item[ch]):
            this_n_opt = j + 1
    flag = abnormal_entry(item)
    if flag or this_n_opt == 0:
        return [dict(item, g_index=item['index'])]
    elif len(item['answer']) > 1 or item['answer'] not in string.ascii_uppercase[:this_n_opt]:
        return [dict(item, g_index=item['index'])]
    k = this_n_opt
    labels = string.ascii_uppercase[:k]
    rotates = [labels]
    dq = deque(labels)
    for i in range(k - 1):
        dq.rotate(1)
        rotates.append(list(dq))
    out = []
    for i, rot in enumerate(rotates):
        if i == 0:
            out.append(dict(item, g_index=item['index']))
        else:
            data = dict(item)
            data['index'] = int(item['index'] + OFFSET * i)
            data['g_index'] = int(data['index'] % OFFSET)
            c_map = {k: v for k, v in zip(rotates[0], rot)}
            data['answer'] = c_map[item['answer']]
            for s, t in c_map.items():
                data[t] = item[s]
            out.append(data)
    return out


def vlmevalkit_build_prompt(line):
    """`ImageMCQDataset.build_prompt`, the text message."""
    question = line['question']
    options = {
        cand: line[cand]
        for cand in string.ascii_uppercase
        if cand in line and not pd.isna(line[cand])
    }
    options_prompt = 'Options:\n'
    for key, item in options.items():
        options_prompt += f'{key}. {item}\n'
    hint = line['hint'] if ('hint' in line and not pd.isna(line['hint'])) else None
    prompt = ''
    if hint is not None:
        prompt += f'Hint: {hint}\n'
    prompt += f'Question: {question}\n'
    if len(options):
        prompt += options_prompt
        prompt += 'Please select the correct answer from the options above. \n'
    return prompt


def create_options_prompt(row_data, option_candidate, sys_prompt="There are several options:"):
    """lmms-eval `MMBench_Evaluator.create_options_prompt`."""
    available_keys = set(row_data.keys()) & set(option_candidate)
    options = {cand: row_data[cand] for cand in available_keys if row_data[cand]}
    sorted_options = dict(sorted(options.items()))
    options_prompt = f"{sys_prompt}\n"
    for key, item in sorted_options.items():
        if pd.notna(item) and item != "nan":
            options_prompt += f"{key}. {item}\n"
    return options_prompt.rstrip("\n"), sorted_options


LMMS_EVAL_KWARGS = {"pre_prompt": "", "post_prompt": "\nAnswer with the option's letter from the given choices directly."}


def mmbench_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """lmms-eval `en_utils.mmbench_doc_to_text` (the dict `data` it builds is reduced to what the prompt uses)."""
    option_candidate = ["A", "B", "C", "D", "E"]
    options_prompt, options_dict = create_options_prompt(doc, option_candidate)

    data = {
        "question": doc["question"],
        "options": options_prompt,
        "hint": doc["hint"],
    }

    query_prompt = f"{data['hint']} {data['question']} {data['options']}" if pd.notna(data["hint"]) and data["hint"] != "nan" else f"{data['question']} {data['options']}"

    if lmms_eval_specific_kwargs:
        query_prompt = f"{query_prompt}\n{lmms_eval_specific_kwargs['post_prompt']}"

    return query_prompt
