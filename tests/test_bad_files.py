"""Bad files are named (docs/bad_input.md): a damaged MME parquet, a null or non-text MME answer,
an unknown MME category, a garbage or non-object config.json, a truncated safetensors file, an
index naming a file outside its checkpoint folder, a garbage lock file. Each one fails before any
model loads with one line naming the file: a ConfigError from `prepare_job`, exit 2 from the
command, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.config import ConfigError, compose
from harness.pipeline.job import prepare_job
from tests.helpers.cli import cli
from tests.helpers.data import mme_images, write_mme_parquet

ENCODER_ONLY = ["encoder.size=tiny", "encoder.weights=random", "progress=false"]


def one_line_exit_2(res, *needles: str) -> None:
    """The command's failure as the project promises it: exit 2, one line, no traceback."""
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def mme_folder(tmp_path: Path) -> Path:
    return write_mme_parquet(tmp_path / "mme", mme_images(1), shards=1)


def mme_args(folder: Path, tmp_path: Path) -> list[str]:
    return [*ENCODER_ONLY, "dataset=mme", f"dataset.path={folder}", f"results_dir={tmp_path / 'out'}"]


def edit_rows(shard: Path, edit) -> None:
    """Rewrite a parquet shard with `edit(rows)` applied (same schema, nullable text columns)."""
    table = pq.read_table(shard)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)


def the_shard(folder: Path) -> Path:
    (shard,) = sorted((folder / "data").glob("*.parquet"))
    return shard


# --- MME copies -----------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"PAR1 not a parquet file PAR1"], ids=["zero_bytes", "garbage"])
def test_damaged_mme_parquet_is_named(tmp_path: Path, content: bytes) -> None:
    folder = mme_folder(tmp_path)
    shard = the_shard(folder)
    shard.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{shard}: not a readable parquet file"):
        prepare_job(compose(mme_args(folder, tmp_path)))


@pytest.mark.parametrize("value", [None, 1], ids=["null", "number"])
def test_null_or_non_text_mme_answer_is_refused_naming_file_and_row(tmp_path: Path, value: object) -> None:
    folder = mme_folder(tmp_path)
    shard = the_shard(folder)
    if value is None:
        target = 3
        edit_rows(shard, lambda rs: rs[target].update(answer=None))
    else:  # a copy whose answer column holds numbers (1 for Yes): the first row is named
        target = 0
        table = pq.read_table(shard)
        answers = pa.array([value] * table.num_rows)
        pq.write_table(table.set_column(table.schema.get_field_index("answer"), "answer", answers), shard)
    with pytest.raises(ConfigError, match=rf"{shard} row {target}: answer is {value!r}; expected text"):
        prepare_job(compose(mme_args(folder, tmp_path)))


def test_unknown_mme_category_is_refused(tmp_path: Path) -> None:
    folder = mme_folder(tmp_path)
    shard = the_shard(folder)
    rows = pq.read_table(shard).to_pylist()
    first = min(i for i, r in enumerate(rows) if r["category"] == "count")

    def rename(rs: list[dict]) -> None:
        for r in rs:
            if r["category"] == "count":
                r["category"] = "counting"  # not MME's name: it would leave `count` unscored

    edit_rows(shard, rename)
    with pytest.raises(ConfigError, match=rf"{shard} row {first}: unknown category 'counting'"):
        prepare_job(compose(mme_args(folder, tmp_path)))


def test_undecodable_release_text_is_named(tmp_path: Path) -> None:
    from tests.helpers.data import write_mme_release

    root = write_mme_release(tmp_path / "release", mme_images(1))
    txt = sorted(root.rglob("*.txt"))[0]
    txt.write_bytes(b"Is it red?\t\xff\xfeYes\n")
    args = [*ENCODER_ONLY, "dataset=mme", f"dataset.path={root}", f"results_dir={tmp_path / 'out'}"]
    with pytest.raises(ConfigError, match=f"MME release: {txt}: not UTF-8 text"):
        prepare_job(compose(args))


@pytest.mark.slow
def test_garbage_parquet_exits_2_in_one_line(tmp_path: Path) -> None:
    folder = mme_folder(tmp_path)
    the_shard(folder).write_bytes(b"garbage")
    res = cli("harness", *mme_args(folder, tmp_path), cwd=tmp_path)
    one_line_exit_2(res, str(the_shard(folder)), "not a readable parquet file")
    assert not (tmp_path / "out" / "runs").exists()


# --- checkpoint folders -----------------------------------------------------------------------

def tiny_internvl(folder: Path) -> Path:
    """An InternVL3-hf folder as transformers saves it (real key names), tiny."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from harness.encoders.internvit import INTERNVIT_TINY
    from harness.vlm import VLMS

    config = InternVLConfig(vision_config=dict(INTERNVIT_TINY), text_config={
        "model_type": "qwen2", "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320, "tie_word_embeddings": True})
    InternVLForConditionalGeneration(config).save_pretrained(folder)
    VLMS.get("internvl").random_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def internvl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_internvl(tmp_path_factory.mktemp("ckpt") / "internvl")


def copy_of(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / folder.name))


def vlm_args(folder: Path, tmp_path: Path, vlm: bool = True) -> list[str]:
    return ["encoder=internvit_300m", "encoder.size=tiny", f"encoder.weights={folder}", "preprocess=resize",
            *(["vlm=internvl"] if vlm else []), "progress=false", f"results_dir={tmp_path / 'out'}"]


@pytest.mark.parametrize("content,needle", [
    ("{not json", r"config.json is not JSON \(line 1, column 2"),
    ("[1, 2]", "config.json must hold a JSON object; it holds a list"),
    ('{"text_config": [1]}', "text_config / llm_config\\) is a list"),
], ids=["garbage", "list", "text_config_list"])
def test_bad_config_json_is_named(internvl_folder: Path, tmp_path: Path, content: str, needle: str) -> None:
    folder = copy_of(internvl_folder, tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=f"{folder / 'config.json'}: .*{needle}" if "text_config" in needle
                       else f"{folder / 'config.json'}: {needle}"):
        prepare_job(compose(vlm_args(folder, tmp_path)))


@pytest.mark.parametrize("vlm", [True, False], ids=["vlm", "encoder_only"])
def test_truncated_safetensors_is_named(internvl_folder: Path, tmp_path: Path, vlm: bool) -> None:
    folder = copy_of(internvl_folder, tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises(ConfigError, match=f"{folder / 'model.safetensors'}: not a readable safetensors file"):
        prepare_job(compose(vlm_args(folder, tmp_path, vlm)))


@pytest.mark.parametrize("vlm", [True, False], ids=["vlm", "encoder_only"])
def test_truncated_shard_behind_an_index_is_named(internvl_folder: Path, tmp_path: Path, vlm: bool) -> None:
    """With an index, the shards are opened only when loading: their headers are checked first."""
    from safetensors import safe_open

    folder = copy_of(internvl_folder, tmp_path)
    single = folder / "model.safetensors"
    with safe_open(str(single), framework="pt") as handle:
        keys = list(handle.keys())
    shard = folder / "model-00001-of-00001.safetensors"
    single.rename(shard)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(keys, shard.name)}))
    prepare_job(compose(vlm_args(folder, tmp_path, vlm)))  # whole: accepted
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ConfigError, match=f"{shard}: not a readable safetensors file"):
        prepare_job(compose(vlm_args(folder, tmp_path, vlm)))


@pytest.mark.parametrize("name", ["../elsewhere.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
@pytest.mark.parametrize("vlm", [True, False], ids=["vlm", "encoder_only"])
def test_index_pointing_outside_the_folder_is_refused(internvl_folder: Path, tmp_path: Path, name: str,
                                                      vlm: bool) -> None:
    from safetensors import safe_open

    folder = copy_of(internvl_folder, tmp_path)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    weight_map = dict.fromkeys(keys, "model.safetensors")
    weight_map[keys[-1]] = name
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(ConfigError, match="outside the checkpoint folder \\(refused\\)") as info:
        prepare_job(compose(vlm_args(folder, tmp_path, vlm)))
    assert str(folder) in str(info.value) and repr(name) in str(info.value)


@pytest.mark.slow
def test_garbage_config_json_exits_2_in_one_line(internvl_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(internvl_folder, tmp_path)
    (folder / "config.json").write_text("\x00garbage")
    res = cli("harness", *vlm_args(folder, tmp_path), cwd=tmp_path)
    one_line_exit_2(res, str(folder / "config.json"), "is not JSON")
    assert not (tmp_path / "out" / "runs").exists()


# --- locks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["{not json", *(pytest.param(c, marks=pytest.mark.slow) for c in
                                                 ("[]", '{"host": "x"}', ""))])
def test_garbage_lock_is_named_with_how_to_clear_it(tmp_path: Path, content: str) -> None:
    """Run as a command with a timeout: waiting on the lock would fail the test, not hang it."""
    args = [*ENCODER_ONLY, "dataset=synthetic", "dataset.num_images=1", f"results_dir={tmp_path / 'out'}"]
    job = prepare_job(compose(args))
    job.study_dir.mkdir(parents=True)
    lock = job.study_dir / f".{job.config_hash}.lock"
    lock.write_text(content)
    res = cli("harness", *args, cwd=tmp_path, timeout=120)
    one_line_exit_2(res, str(lock), f"rm {lock}")
    assert lock.read_text() == content  # named, not removed: only the user knows it is stale
