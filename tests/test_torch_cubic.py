"""Phi-3's global view on the CPU cores equals torch's own bicubic `F.interpolate` bit for bit
(docs/resampling.md §6): the kernel is compared with torch directly (not through the runtime
check), on whole downscale factors 1..7 on each axis, small and real tile sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.preprocess import kernels, torch_cubic
from harness.preprocess.normalization import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    normalization_table,
)
from harness.preprocess.torch_cubic import cubic_view, cubic_weights, kernel_name

TABLES = [normalization_table(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "torchvision"),
          normalization_table(IMAGENET_MEAN, IMAGENET_STD, "transformers")]


def torch_view(pixels: np.ndarray, table: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """torch's F.interpolate called here directly, not through torch_cubic (the code under test)."""
    normalised = np.stack([table[c][pixels[..., c]] for c in range(3)])[None]
    return F.interpolate(torch.from_numpy(normalised), size=size, mode="bicubic")[0]


FACTORS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 4), (4, 4), (5, 2), (7, 6)]
CASES = [("cubic_view", *factors) for factors in FACTORS] + [
    ("cubic_view_pairs", factor_y, 2) for factor_y in range(1, 7)]  # the shared-taps kernel: factor 2 on x


@pytest.mark.parametrize(("name", "factor_y", "factor_x"), CASES)
@pytest.mark.parametrize("tile", [8, 336])
def test_kernel_equals_torch(name: str, factor_y: int, factor_x: int, tile: int) -> None:
    rng = np.random.default_rng(factor_y * 10 + factor_x + tile)
    pixels = rng.integers(0, 256, (tile * factor_y, tile * factor_x, 4), dtype=np.uint8)
    for table in TABLES:
        out = torch.empty((3, tile, tile))
        kernels.parallel[name](pixels, table, factor_y, factor_x, cubic_weights(tile * factor_y, tile),
                               cubic_weights(tile * factor_x, tile), out.numpy())
        assert torch.equal(out, torch_view(pixels, table, (tile, tile))), (factor_y, factor_x, tile)


def test_each_factor_takes_its_kernel() -> None:
    assert [kernel_name(k) for k in (1, 2, 3, 4, 6)] == ["cubic_view", "cubic_view_pairs"] + ["cubic_view"] * 3
    pixels = np.zeros((8, 32, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="factor of 2 along x only"):
        kernels.parallel["cubic_view_pairs"](pixels, TABLES[0], 1, 4, cubic_weights(8, 8), cubic_weights(32, 8),
                                             np.empty((3, 8, 8), dtype=np.float32))


@pytest.mark.parametrize(("name", "factor_x"), [("cubic_view", 3), ("cubic_view_pairs", 2)])
def test_transposed_views_and_serial_kernels(name: str, factor_x: int) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (8 * factor_x, 24, 4), dtype=np.uint8).swapaxes(0, 1)
    out = torch.empty((3, 8, 8))
    kernels.serial[name](pixels, TABLES[0], 3, factor_x, cubic_weights(24, 8), cubic_weights(8 * factor_x, 8),
                         out.numpy())
    assert torch.equal(out, torch_view(np.ascontiguousarray(pixels), TABLES[0], (8, 8)))


def test_a_factor_that_is_not_whole_goes_to_torch() -> None:
    assert cubic_weights(500, 336) is None
    pixels = np.random.default_rng(2).integers(0, 256, (500, 700, 4), dtype=np.uint8)
    out = torch.empty((3, 336, 336))
    cubic_view(pixels, TABLES[0], (336, 336), out)
    assert torch.equal(out, torch_view(pixels, TABLES[0], (336, 336)))


def test_a_disagreeing_kernel_is_dropped_for_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first image of each kind is also made by torch; on a difference torch is used from then on."""
    def wrong(*args: object) -> None:
        args[-1][...] = 0.0  # type: ignore[index]

    monkeypatch.setattr(torch_cubic, "_checked", {})
    monkeypatch.setitem(kernels.parallel, "cubic_view_pairs", wrong)
    pixels = np.random.default_rng(3).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    out = torch.empty((3, 8, 8))
    with pytest.warns(RuntimeWarning, match="differs"):
        cubic_view(pixels, TABLES[0], (8, 8), out)
    assert torch.equal(out, torch_view(pixels, TABLES[0], (8, 8)))
    assert torch_cubic._checked == {("cubic_view_pairs", True, True): False}
