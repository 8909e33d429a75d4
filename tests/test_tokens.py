"""`python -m harness.tokens`: counts from geometry alone, no weights loaded."""

from __future__ import annotations

import json

import pytest

from harness import tokens


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = tokens.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    ("encoder", "extra", "per_image"),
    [("clip_vit_l14_336", [], 576), ("internvit_300m", [], 256), ("phi3_vision", ["encoder.connector=flat"], 576)],
)
def test_json_counts_per_size(capsys: pytest.CaptureFixture[str], encoder: str, extra: list[str], per_image: int,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.encoders.base as base

    def no_model(*a, **k):  # the CLI must never build a model
        raise AssertionError("a model was built")

    monkeypatch.setattr(base.EncoderModel, "__init__", no_model)
    monkeypatch.setattr(base.Encoder, "build_backbone", no_model)
    rc, out, _ = run(capsys, f"encoder={encoder}", "preprocess=resize", "sizes=[808x1100,1920x1080,1x1]",
                     "format=json", *extra)
    assert rc == 0
    rows = json.loads(out)
    assert [r["size"] for r in rows] == ["808x1100", "1920x1080", "1x1"]
    assert all(r["visual_tokens"] == per_image and (r["rows"], r["cols"], r["views"]) == (1, 1, 1) for r in rows)


def test_table_format(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "encoder=clip_vit_l14_336", "preprocess=resize", "sizes=[640x480]")
    assert rc == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["size", "rows", "cols", "views", "executed_views", "visual_tokens"]
    assert row.split() == ["640x480", "1", "1", "1", "1", "576"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encoder=phi3_vision", "preprocess=resize"], "connector 'phi3_hd' needs"),
        (["encoder=clip_vit_l14_336", "preprocess=resize", "encoder.connector=llava_next"], "llava_anyres"),
        (["encoder=clip_vit_l14_336", "preprocess=resize", "sizes=[12x]"], "WIDTHxHEIGHT"),
        (["encoder=clip_vit_l14_336", "format=csv"], "format must be one of table, json"),
        (["encoder=nope"], "valid choices"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    rc, _, err = run(capsys, *args)
    assert rc == 2
    assert message in err and err.startswith("error: ")
