"""Every pair of a new encoder (qwen2_5_vl_vit, siglip_so400m with each connector) or a new
strategy (qwen_native, llava_onevision) with the others either runs (a tiny model encodes an
image into exactly the counted tokens) or is refused in `prepare_job`, before any model
loads, with the reason."""

from __future__ import annotations

import pytest
from PIL import Image

from harness.config import ConfigError, compose
from harness.encoders import base as encoder_base
from harness.pipeline.job import prepare_job
from harness.preprocess import STRATEGIES as REGISTERED

STRATEGIES = [*REGISTERED.names(), "native"]
# (encoder overrides) -> {strategy: refusal message}; every other strategy runs.
ENCODERS = {
    ("encoder=qwen2_5_vl_vit",): {},
    ("encoder=siglip_so400m",): {"qwen_native": "variable size"},
    ("encoder=siglip_so400m", "encoder.connector=llava_onevision"): {
        "resize": "global/base view first", "center_crop": "global/base view first",
        "internvl_dynamic": "global/base view first", "qwen_native": "variable size",
        "native": "global/base view first",
    },
    ("encoder=clip_vit_l14_336",): {"qwen_native": "variable size"},
    ("encoder=internvit_300m",): {"qwen_native": "variable size"},
    ("encoder=phi3_vision",): {"qwen_native": "variable size"},
    ("encoder=qwen2_5_vl_vit", "preprocess.tile_size=350"): {
        s: "multiple of 28" for s in STRATEGIES if s not in ("qwen_native", "native")
    } | {"qwen_native": "tile_size is the resize factor"},
}
NEW = {"qwen_native", "llava_onevision"}
CASES = [
    (enc, strategy, refusals.get(strategy))
    for enc, refusals in ENCODERS.items() for strategy in STRATEGIES
    if (enc[0] in ("encoder=qwen2_5_vl_vit", "encoder=siglip_so400m") or strategy in NEW)
    and not (len(enc) > 1 and enc[1].startswith("preprocess.") and strategy == "native")  # native has no keys
]


def job_for(enc: tuple[str, ...], strategy: str):
    overrides = [*enc, f"preprocess={strategy}", "encoder.size=tiny", "encoder.weights=random", "dataset=synthetic"]
    # tile_size set on the command line must come after the preprocess group
    overrides = [o for o in overrides if not o.startswith("preprocess.")] + [o for o in overrides
                                                                            if o.startswith("preprocess.")]
    return prepare_job(compose(overrides))


@pytest.mark.slow
@pytest.mark.parametrize(("enc", "strategy", "refused"), CASES, ids=[f"{' '.join(e)}-{s}" for e, s, _ in CASES])
def test_pair_runs_or_is_refused_before_loading(enc, strategy, refused, monkeypatch: pytest.MonkeyPatch) -> None:
    if refused is not None:
        def no_model(*a, **k):
            raise AssertionError("a model was built")

        monkeypatch.setattr(encoder_base, "build_connector", no_model)  # what building an encoder calls
        with pytest.raises(ConfigError, match=refused):
            job_for(enc, strategy)
        return
    job = job_for(enc, strategy)
    encoder = job.encoder_cls(runtime=job.runtime, **job.encoder_kwargs)
    views = job.strategy.apply(Image.new("RGB", (500, 260), (40, 90, 200)))
    (out,), _ = encoder.encode([views])
    assert out.num_tokens == encoder.num_tokens(views.layout) > 0
