# ruff: noqa  -- kept verbatim (quirks included); style fixes would stop it being a transcription
"""VLMEvalKit's choice between a model wrapper's own prompt and the dataset's, and the wrappers'
own prompts, kept as the tests' reference: the inference loop asks
`model.use_custom_prompt(dataset)` and then calls `model.build_prompt(line, dataset)`, else
`dataset.build_prompt(line)` (vlmeval/inference.py).

Source: open-compass/VLMEvalKit at commit e8e78f05f3080fe28154f2130321f17951c3be94:
- `vlmeval/smp/misc.py`: `cn_string`, `listinstr` (verbatim).
- `vlmeval/dataset/__init__.py` `DATASET_TYPE` / `DATASET_MODALITY`: reduced to a table of the six
  datasets the harness has (their classes' `TYPE`: ImageYORNDataset 'Y/N', ImageVQADataset 'VQA',
  ImageMCQDataset 'MCQ'; all image datasets).
- `vlmeval/dataset/image_base.py` `ImageBaseDataset.build_prompt`, `image_vqa.py`
  `ImageVQADataset.build_prompt`, `image_yorn.py` `ImageYORNDataset.build_prompt` (the generic
  prompts; `ImageMCQDataset.build_prompt` is tests/references/mmbench_reference.py's).
- `vlmeval/vlm/base.py` `BaseModel.use_custom_prompt` (False).
- `vlmeval/vlm/llava/llava.py` `LLaVA_Next.use_custom_prompt` / `build_prompt`.
- `vlmeval/vlm/internvl/internvl_chat.py` `InternVLChat.use_custom_prompt` / `build_prompt` (the
  Y/N, MCQ and VQA branches; USE_COT, MPO and GUI paths left out), `vlmeval/vlm/internvl/utils.py`
  `build_multi_choice_prompt`.
- `vlmeval/vlm/qwen2_vl/prompt.py` `Qwen2VLPromptMixin` (`use_custom_prompt`, `build_prompt`,
  `_build_mcq_prompt`, `_build_yorn_prompt`, `_build_vqa_prompt`).
- `vlmeval/vlm/phi3_vision.py` `Phi3Vision`, `vlmeval/vlm/llava/llava.py` `LLaVA_OneVision_HF`: no
  `use_custom_prompt` (the base class's).
- `vlmeval/config.py`: every `Qwen2.5-VL-*-Instruct` entry passes `use_custom_prompt=False`.
`dump_image` returns a fixed path list here; `text_of` takes the text message back out.
"""

import os
import string

import pandas as pd


def cn_string(s):
    import re
    if re.search(u'[\u4e00-\u9fff]', s):
        return True
    return False


def listinstr(lst, s):
    assert isinstance(lst, list)
    for item in lst:
        if item in s:
            return True
    return False


_TYPES = {'MME': 'Y/N', 'POPE': 'Y/N', 'TextVQA_VAL': 'VQA', 'DocVQA_VAL': 'VQA', 'ChartQA_TEST': 'VQA',
          'MMBench_DEV_EN': 'MCQ'}


def DATASET_TYPE(dataset, *, default: str = 'MCQ') -> str:
    return _TYPES.get(dataset, default)


def DATASET_MODALITY(dataset, *, default: str = 'IMAGE') -> str:
    return 'IMAGE'


def text_of(msgs):
    texts = [m['value'] for m in msgs if m['type'] == 'text']
    assert len(texts) == 1
    return texts[0]


# --- the datasets' generic prompts -----------------------------------------------------------
class ImageBaseDataset:
    def __init__(self, dataset_name):
        self.dataset_name = dataset_name
        self.meta_only = False

    def dump_image(self, line):
        return ['/tmp/image.jpg']

    def build_prompt(self, line):
        if isinstance(line, int):
            line = self.data.iloc[line]

        if self.meta_only:
            tgt_path = toliststr(line['image_path'])
        else:
            tgt_path = self.dump_image(line)

        question = line['question']

        msgs = []
        if isinstance(tgt_path, list):
            msgs.extend([dict(type='image', value=p) for p in tgt_path])
        else:
            msgs = [dict(type='image', value=tgt_path)]
        msgs.append(dict(type='text', value=question))
        return msgs


class ImageVQADataset(ImageBaseDataset):
    def build_prompt(self, line):
        msgs = super().build_prompt(line)
        assert msgs[-1]['type'] == 'text'
        msgs[-1][
            'value'] += '\nAnswer the question using a single word or phrase.'
        return msgs


class ImageYORNDataset(ImageBaseDataset):
    def build_prompt(self, line):
        msgs = super().build_prompt(line)
        if self.dataset_name == 'AMBER':
            assert sum([x['type'] == 'text' for x in msgs]) == 1
            for item in msgs:
                if item['type'] == 'text':
                    item['value'] += '\nPlease answer yes or no.'
        return msgs


# --- the model wrappers ----------------------------------------------------------------------
class BaseModel:
    def use_custom_prompt(self, dataset):
        return False

    def dump_image(self, line, dataset):
        return ['/tmp/image.jpg']


class LLaVA_Next(BaseModel):
    def use_custom_prompt(self, dataset):
        assert dataset is not None
        if DATASET_TYPE(dataset) == "MCQ":
            return True
        return False

    def build_prompt(self, line, dataset=None):
        assert self.use_custom_prompt(dataset)
        assert dataset is None or isinstance(dataset, str)
        tgt_path = self.dump_image(line, dataset)

        question = line["question"]
        hint = line["hint"] if ("hint" in line and not pd.isna(line["hint"])) else None
        if hint is not None:
            question = hint + "\n" + question

        options = {
            cand: line[cand]
            for cand in string.ascii_uppercase
            if cand in line and not pd.isna(line[cand])
        }
        for key, item in options.items():
            question += f"\n{key}. {item}"
        prompt = question

        if len(options):
            prompt += (
                "\n请直接回答选项字母。"
                if cn_string(prompt)
                else "\nAnswer with the option's letter from the given choices directly."
            )
        else:
            prompt += (
                "\n请直接回答问题。"
                if cn_string(prompt)
                else "\nAnswer the question directly."
            )
        message = [dict(type="image", value=s) for s in tgt_path]
        message.append(dict(type="text", value=prompt))
        return message


def build_multi_choice_prompt(line, dataset=None):
    question = line['question']
    hint = line['hint'] if ('hint' in line and not pd.isna(line['hint'])) else None
    if hint is not None:
        question = hint + '\n' + question

    options = {
        cand: line[cand]
        for cand in string.ascii_uppercase
        if cand in line and not pd.isna(line[cand])
    }
    for key, item in options.items():
        question += f'\n{key}. {item}'
    prompt = question

    if len(options):
        prompt += '\n请直接回答选项字母。' if cn_string(
            prompt) else "\nAnswer with the option's letter from the given choices directly."
    else:
        prompt += '\n请直接回答问题。' if cn_string(prompt) else '\nAnswer the question directly.'

    return prompt


class InternVLChat(BaseModel):
    def __init__(self, use_custom_prompt=True):
        self._use_custom_prompt = use_custom_prompt
        self.use_mpo_prompt = False
        self.use_cot = False
        self.kwargs = dict(max_new_tokens=4096)

    def use_custom_prompt(self, dataset):
        if not self._use_custom_prompt:
            return False

        assert dataset is not None
        if dataset in [
            'atomic_dataset', 'electro_dataset', 'mechanics_dataset',
            'optics_dataset', 'quantum_dataset', 'statistics_dataset'
        ]:
            return False
        if dataset in ["SSI_Bench"]:
            return False
        if listinstr(['MMDU', 'MME-RealWorld', 'MME-RealWorld-CN', 'WeMath_COT', 'MMAlignBench', 'ChartQAPro', 'ChartMuseum', 'MMSIVideo_U50', 'MMSIVideo_SC'], dataset):  # noqa: E501
            # For Multi-Turn we don't have custom prompt
            return False
        if DATASET_TYPE(dataset) == 'MCQ':
            if dataset is not None and 'LEGO' in dataset:
                return False
        if DATASET_MODALITY(dataset) == 'VIDEO':
            # For Video benchmarks we don't have custom prompt at here
            return False
        else:
            return True

    def build_prompt(self, line, dataset=None):
        assert self.use_custom_prompt(dataset)
        assert dataset is None or isinstance(dataset, str)
        tgt_path = self.dump_image(line, dataset)

        if dataset is not None and DATASET_TYPE(dataset) == 'Y/N':
            question = line['question']
            if listinstr(['MME'], dataset):
                prompt = question + ' Answer the question using a single word or phrase.'
            elif listinstr(['HallusionBench', 'AMBER'], dataset):
                prompt = question + ' Please answer yes or no. Answer the question using a single word or phrase.'
            else:
                prompt = question
        elif dataset is not None and DATASET_TYPE(dataset) == 'MCQ':
            prompt = build_multi_choice_prompt(line, dataset)
        elif dataset is not None and DATASET_TYPE(dataset) == 'VQA':
            question = line['question']
            if listinstr(['LLaVABench', 'WildVision'], dataset):
                prompt = question + '\nAnswer this question in detail.'
            elif listinstr(['OCRVQA', 'TextVQA', 'ChartQA', 'DocVQA', 'InfoVQA', 'OCRBench',
                            'DUDE', 'SLIDEVQA', 'GQA', 'MMLongBench_DOC'], dataset):
                prompt = question + '\nAnswer the question using a single word or phrase.'
            elif listinstr(['MathVerse'], dataset):
                question = question.replace("please directly answer the question and", "please")
                prompt = question
            elif listinstr(['MathVista', 'MathVision', 'VCR', 'MTVQA', 'MMVet',
                            'MMDU', 'CRPE', 'MIA-Bench', 'MM-Math', 'DynaMath', 'QSpatial',
                            'WeMath', 'LogicVista', 'MM-IFEval', 'ChartMimic', 'MMReason'], dataset):
                prompt = question
            else:
                prompt = question + '\nAnswer the question using a single word or phrase.'
        else:
            # VQA_ex_prompt: OlympiadBench, VizWiz
            prompt = line['question']

        message = [dict(type='text', value=prompt)]
        message.extend([dict(type='image', value=s) for s in tgt_path])
        return message


class Qwen2VLPromptMixin:
    def __init__(self, *args, use_custom_prompt: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._use_custom_prompt = use_custom_prompt

    def use_custom_prompt(self, dataset: str) -> bool:
        dataset_type = DATASET_TYPE(dataset, default=None)

        if not self._use_custom_prompt:
            return False
        if dataset in {'MMMU_DEV_VAL', 'MMMU_TEST'}:
            return True
        if dataset_type == 'MCQ':
            if dataset is not None and 'LEGO' in dataset:
                return False
            return True
        if dataset_type == 'Y/N' and dataset in {'HallusionBench', 'POPE'}:  # MME has it's own prompt
            return True
        if dataset_type == 'VQA' and dataset not in {'MMVet', 'ChartQAPro', 'ChartQAPro_CoT', 'ChartQAPro_PoT', 'ChartMuseum'}:  # noqa: E501
            return True
        return False

    def build_prompt(self, line, dataset: str) -> list[dict[str, str]]:
        dataset_type = DATASET_TYPE(dataset, default=None)
        if dataset_type == 'MCQ':
            return self._build_mcq_prompt(line, dataset)
        if dataset_type == 'Y/N':
            return self._build_yorn_prompt(line, dataset)
        if dataset_type == 'VQA':
            return self._build_vqa_prompt(line, dataset)
        raise ValueError(f'Unsupported dataset: {dataset}')

    def _build_mcq_prompt(self, line, dataset: str) -> list[dict[str, str]]:
        """change the prompt for MCQ dataset: use chinese prompt if the question contains chinese characters."""
        MCQ_CN_PROMPT = '请直接回答选项字母。'
        MCQ_EN_PROMPT = 'Please select the correct answer from the options above.'

        import string

        import pandas as pd

        def cn_string(s):
            import re

            if re.search('[\u4e00-\u9fff]', s):
                return True
            return False

        tgt_path = self.dump_image(line, dataset)
        question = line['question']
        options = {cand: line[cand] for cand in string.ascii_uppercase if cand in line and not pd.isna(line[cand])}
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
            prompt += MCQ_CN_PROMPT if cn_string(prompt) else MCQ_EN_PROMPT
        prompt = prompt.rstrip()
        msgs = []
        if isinstance(tgt_path, list):
            msgs.extend([dict(type='image', value=p) for p in tgt_path])
        else:
            msgs = [dict(type='image', value=tgt_path)]
        msgs.append(dict(type='text', value=prompt))
        return msgs

    def _build_yorn_prompt(self, line, dataset: str) -> list[dict[str, str]]:
        """change the prompt for YORN dataset:"""
        YORN_PROMPT = ' Please answer yes or no.'

        tgt_path = self.dump_image(line, dataset)
        question = line['question']
        msgs = []
        if isinstance(tgt_path, list):
            msgs.extend([dict(type='image', value=p) for p in tgt_path])
        else:
            msgs = [dict(type='image', value=tgt_path)]
        msgs.append(dict(type='text', value=question))
        assert msgs[-1]['type'] == 'text'
        msgs[-1]['value'] += YORN_PROMPT
        return msgs

    def _build_vqa_prompt(self, line, dataset: str) -> list[dict[str, str]]:
        """change the prompt for VQA dataset:"""
        VQA_PROMPT = '\nPlease try to answer the question with short words or phrases if possible.'

        tgt_path = self.dump_image(line, dataset)
        question = line['question']
        msgs = []
        if isinstance(tgt_path, list):
            msgs.extend([dict(type='image', value=p) for p in tgt_path])
        else:
            msgs = [dict(type='image', value=tgt_path)]
        msgs.append(dict(type='text', value=question))
        assert msgs[-1]['type'] == 'text'
        msgs[-1]['value'] += VQA_PROMPT
        return msgs


class Qwen2VLChat(Qwen2VLPromptMixin, BaseModel):
    def __init__(self, use_custom_prompt: bool = True):
        super().__init__(use_custom_prompt=use_custom_prompt)


class Phi3Vision(BaseModel):
    pass


class LLaVA_OneVision_HF(BaseModel):
    pass


# The wrapper (as vlmeval/config.py builds it) of each harness family's checkpoints.
WRAPPERS = {
    "llava_next": LLaVA_Next,                                          # llava_next_* entries
    "internvl": lambda: InternVLChat(),                                # InternVL2/2.5/3-*: version V2.0
    "qwen2_5_vl": lambda: Qwen2VLChat(use_custom_prompt=False),        # Qwen2.5-VL-*-Instruct entries
    "qwen2_vl": lambda: Qwen2VLChat(),                                 # Qwen2-VL-*-Instruct entries
    "llava_onevision": LLaVA_OneVision_HF,
    "phi3_vision": Phi3Vision,
}


def toolkit_text(wrapper, dataset, line, generic_mcq):
    """The text VLMEvalKit gives the model: its own prompt when `use_custom_prompt`, else the
    dataset's (`generic_mcq`: `ImageMCQDataset.build_prompt`'s text, from mmbench_reference)."""
    model = WRAPPERS[wrapper]()
    if model.use_custom_prompt(dataset):
        return text_of(model.build_prompt(line, dataset))
    kind = DATASET_TYPE(dataset)
    if kind == 'MCQ':
        return generic_mcq(line)
    data = (ImageVQADataset if kind == 'VQA' else ImageYORNDataset)(dataset)
    return text_of(data.build_prompt(line))
