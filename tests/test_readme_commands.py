"""Every command in the README's and the docs' bash blocks runs as written (issue 12, item 17).

The commands are read from README.md and every page under docs/; each must have an entry below: run as written,
run with small overrides appended (tiny random weights instead of the hub's, a fixture folder
instead of `/data/...`, fewer images; Hydra takes the last value of a key), or skipped with
the reason (a hub, a GPU, a cluster). A new README command without an entry fails the test.
Make targets run through the real Makefile with the already installed interpreter.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from tests.helpers.data import mme_images, write_mme_parquet, write_tiny_clip

ROOT = Path(__file__).resolve().parent.parent
TINY = "encoder.size=tiny encoder.weights=random"
HUB = "pretrained weights come from the hub"

pytestmark = pytest.mark.slow

# command as written in the README -> ("run", overrides appended, why) or ("skip", why)
HOW: dict[str, tuple[str, ...]] = {
    "make demo": ("run", "ARGS=dataset.num_images=2", "the demo on 2 images per encoder"),
    "make test": ("skip", "the test suite itself"),
    "make gpu-check": ("skip", "needs a GPU (the CUDA tests skip without one; the bench needs one)"),
    ". .venv/bin/activate": ("skip", "sets up the reader's shell; the commands here run with the installed "
                             "interpreter"),
    "python -m harness encoder=clip_vit_l14_336 encoder.connector=llava_next preprocess=llava_anyres "
    "encoder.size=tiny encoder.weights=random": ("run", "dataset.num_images=2", "fewer images"),
    "make status STUDY=quickstart": ("run", "", ""),
    "python -m harness encoder=internvit_300m preprocess=internvl_dynamic vlm=internvl dataset=synthetic "
    "encoder.size=tiny encoder.weights=random": ("run", "dataset.num_images=2 vlm.max_new_tokens=4", "fewer images"),
    'make sweep STUDY=benchmarks_by_strategy ARGS="dataset.limit=200 dataset.seed=0"':
        ("skip", "needs the four benchmarks and three VLMs from the hub; tests/test_benchmarks_study.py runs it "
                 "tiny on fixtures"),
    "make tables figures": ("run", "", ""),
    "python -m harness encoder=clip_vit_l14_336 preprocess=resize dataset=synthetic "
    "encoder.size=tiny encoder.weights=random": ("run", "dataset.num_images=2", "fewer images"),
    "python -m harness -m encoder=clip_vit_l14_336 preprocess=resize,native":
        ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness.report results/runs": ("run", "", ""),
    "python -m harness encoder=clip_vit_l14_336 preprocess=llava_anyres preprocess.pinpoint_order=wh":
        ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness -m preprocess=internvl_dynamic,phi3_hd,llava_anyres,center_crop "
    "encoder.size=tiny encoder.weights=random": ("run", "dataset.num_images=2", "fewer images"),
    "python -m harness.tokens encoder=phi3_vision preprocess=native 'sizes=[808x1100,1920x1080]' format=table":
        ("run", "", ""),
    "python -m harness.tokens encoder=clip_vit_l14_336 encoder.connector=llava_next preprocess=llava_anyres "
    "format=json": ("run", "", ""),
    "python -m harness dataset=mme dataset.path=/data/MME":
        ("run", f"{TINY} dataset.path={{mme}} dataset.limit=4", f"{HUB}; MME"),
    "python -m harness dataset=mme dataset.path=/data/MME_Benchmark_release_version dataset.categories=[OCR,artwork]":
        ("run", f"{TINY} dataset.path={{mme}} dataset.limit=4", f"{HUB}; MME"),
    "python -m harness dataset=image_folder dataset.path=/data/imgs dataset.labels=subfolder dataset.limit=500 "
    "dataset.seed=0": ("run", f"{TINY} dataset.path={{imgs}}", f"{HUB}; a fixture folder"),
    "python -m harness.mme.scoring my_vlm_answers.parquet eval_tool/Your_Results --out results/tables":
        ("run", "", ""),
    "python -m harness.mme.baseline": ("skip", "needs openai/clip-vit-large-patch14-336 and lmms-lab/MME from the hub"),
    "python -m harness.mme.baseline dataset.path=/data/MME encoder.weights=/models/clip-l-336 preprocess=resize":
        ("run", "dataset.path={mme} encoder.weights={clip}", "a tiny CLIP checkpoint and the MME fixture"),
    "make report": ("run", "", ""),
    "python -m harness -m experiment=quickstart/default encoder.size=full study=gpu_full dataset.num_images=96 "
    "device=cuda dtype=bfloat16,float32 batch_views=32": ("gpu", f"{TINY} dataset.num_images=2", "needs a GPU"),
    "make sweep STUDY=tiling_budget": ("skip", "needs lmms-lab/MME and pretrained weights from the hub "
                                       "(its jobs' pre-load checks: tests/test_sweep.py)"),
    'make sweep STUDY=encoder_zoo LAUNCHER=slurm ARGS="hydra.launcher.partition=a100"': ("skip", "needs SLURM"),
    'make sweep STUDY=quickstart ARGS="dataset.num_images=8"': ("run", "", ""),
    "make tables && make figures": ("run", "", ""),
    "python -m harness preprocess=internvl_dynamic preprocess.backend=pil":
        ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness device=cuda preprocess.device=cuda num_workers=auto": ("skip", "needs a GPU"),
    "python bench/bench_preprocess.py --quick": ("skip", "a benchmark of minutes; `make bench` runs it"),
    "harness-report /other/runs": ("skip", "reads a folder of the reader's; the same command on this folder's runs "
                                   "is `python -m harness.report results/runs` above"),
    "make status [STUDY=tiling_budget]": ("skip", "composes every job of every study (minutes); "
                                          "tests/test_status.py runs harness-status"),
    "python -m harness.sweep tiling_budget --dry-run": ("run", "", ""),
    'make sweep STUDY=mme_strategies ARGS="encoder.size=tiny encoder.weights=random dataset=synthetic '
    'dataset.num_images=4 vlm.max_new_tokens=4" && make tables figures': ("run", "", ""),
    "python -m harness encoder=clip_vit_l14_336 encoder.connector=llava_next encoder.weights=<LLaVA-NeXT folder or "
    "hub id> preprocess=llava_anyres dataset=mme dataset.path=<MME> vlm=llava_next vlm.max_new_tokens=16":
        ("skip", "placeholders for a LLaVA-NeXT checkpoint and MME"),
    "python -m harness encoder=internvit_300m encoder.size=tiny encoder.weights=random preprocess=resize vlm=internvl "
    "dataset=synthetic": ("run", "dataset.num_images=2", "fewer images"),
    "python -m harness encoder=internvit_300m encoder.weights=OpenGVLab/InternVL3-1B-hf preprocess=internvl_dynamic "
    "preprocess.max_tiles=6 dataset=mme dataset.path=<MME> vlm=internvl vlm.protocol=lmms_eval":
        ("skip", "OpenGVLab/InternVL3-1B-hf comes from the hub; <MME> is a placeholder"),
    "make sweep STUDY=token_budget": ("skip", "needs lmms-lab/MME and pretrained weights from the hub"),
    "python -m harness encoder=clip_vit_l14_336 preprocess=center_crop reduce=visionzip reduce.dominant=54 "
    "reduce.contextual=10": ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness.tokens encoder=clip_vit_l14_336 encoder.connector=llava_next preprocess=llava_anyres "
    "reduce=visionzip": ("run", "", ""),
    "python -m harness.tokens encoder=clip_vit_l14_336 preprocess=center_crop reduce=visionzip": ("run", "", ""),
    "python -m harness.tokens encoder=internvit_300m preprocess=native reduce=prumerge": ("run", "", ""),
    "python -m harness encoder=qwen2_5_vl_vit preprocess=native encoder.size=tiny encoder.weights=random":
        ("run", "dataset.num_images=2", "fewer images"),
    "python -m harness encoder=qwen2_5_vl_vit preprocess=qwen_native preprocess.max_pixels=200704":
        ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness encoder=qwen2_5_vl_vit preprocess=internvl_dynamic":
        ("run", f"{TINY} dataset.num_images=2", HUB),
    "python -m harness encoder=siglip_so400m encoder.connector=llava_onevision preprocess=llava_onevision "
    "encoder.weights=llava-hf/llava-onevision-qwen2-0.5b-ov-hf":
        ("skip", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf comes from the hub (tests/test_llava_onevision.py "
                 "loads a save_pretrained copy)"),
    "python -m harness.tokens encoder=qwen2_5_vl_vit preprocess=native 'sizes=[808x1100,1920x1080]'": ("run", "", ""),
    'make sweep STUDY=native_vs_tiles ARGS="encoder.size=tiny encoder.weights=random"':
        ("skip", "10 jobs on 48 images (minutes); tests/test_native_study.py checks every job before loading "
                 "and makes the figures from a tiny run"),
    "python -m harness.sweep native_vs_tiles encoder.size=tiny encoder.weights=random dataset.num_images=12 "
    "results_dir=/tmp/nvt && python -m harness.report /tmp/nvt/runs --out /tmp/nvt":
        ("skip", "writes to /tmp/nvt, outside the test's folder; tests/test_native_study.py covers the study"),
}


def documented_commands() -> list[str]:
    """The commands of the ```bash blocks of README.md and docs/**/*.md, continuation lines
    joined, comments dropped."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.split(r"(?:^|\s+)#", line)[0].strip()
            if command:
                out.append(" ".join(command.split()))
    return out


def test_every_readme_command_has_an_entry() -> None:
    assert sorted(set(documented_commands())) == sorted(HOW)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to run the commands in, with what they name: predictions, an eval_tool folder,
    the MME and image fixtures, a tiny CLIP, and an 'installed' virtual environment for make."""
    work = tmp_path_factory.mktemp("readme")
    (work / "pyproject.toml").write_text("")
    (work / ".venv").mkdir()
    (work / ".venv" / ".installed").write_text("")  # newer than pyproject.toml: make installs nothing
    os.utime(work / "pyproject.toml", (1, 1))
    rows = [{"question_id": f"existence/{i}.jpg", "category": "existence", "question": f"q{i}{a}",
             "answer": a, "prediction": a} for i in range(2) for a in ("Yes", "No")]
    pd.DataFrame(rows).to_parquet(work / "my_vlm_answers.parquet")
    results = work / "eval_tool" / "Your_Results"
    results.mkdir(parents=True)
    (results / "existence.txt").write_text("A.jpg\tIs there a train?\tYes\tYes\nA.jpg\tIs there a bed?\tNo\tNo\n")
    write_mme_parquet(work / "fixtures" / "mme", mme_images(4))  # the baseline holds half of them out
    for label in ("cats", "dogs"):
        (work / "fixtures" / "imgs" / label).mkdir(parents=True)
        Image.new("RGB", (50, 40), (200, 10, 10)).save(work / "fixtures" / "imgs" / label / "a.png")
    (work / "fixtures" / "clip").mkdir()
    write_tiny_clip(work / "fixtures" / "clip")
    return work


def argv_of(command: str, extra: str, work: Path) -> list[list[str]]:
    """The processes a README command line starts, with `extra` appended (to ARGS for make)."""
    extra = extra.format(**{name: work / "fixtures" / name for name in ("mme", "imgs", "clip")})
    out = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[0] == "make":
            assert not extra or extra.startswith("ARGS="), extra  # make takes overrides through ARGS
            settings = [f"PY={sys.executable}", "VENV=.venv", *([extra] if extra else [])]
            out.append(["make", "-s", "-f", str(ROOT / "Makefile"), *words[1:], *settings])
        else:
            assert words[0] in (".venv/bin/python", "python"), command
            out.append([sys.executable, *words[1:], *shlex.split(extra)])
    return out


@pytest.mark.parametrize("command", list(HOW))
def test_readme_command_runs(command: str, workdir: Path) -> None:
    how = HOW[command]
    if how[0] == "skip" or (how[0] == "gpu" and not torch.cuda.is_available()):
        pytest.skip(how[-1])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MPLBACKEND": "Agg"}
    for argv in argv_of(command, how[1], workdir):
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
