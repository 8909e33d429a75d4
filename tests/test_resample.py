"""Both resamplers equal Pillow's `Image.resize` bit for bit (docs/resampling.md): the
compiled CPU one (`resize_array`, also with a window and into a canvas) and the torch one.

Pillow itself is the reference: random noise images (every tap matters), exact equality of
every byte, on random size pairs, extreme ratios, 1-px sides, up and down, and both pass
orders. The quick set runs always; the sweep over thousands of pairs is `slow`.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from harness.preprocess import STRATEGIES, build_strategy, kernels
from harness.preprocess.pixels import rgbx, with_padding
from harness.preprocess.resample import coefficients, resize, resize_array, transpose_array, vertical_first

FILTERS = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the CPU is shared and the sizes are small (faster, same pixels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def noise(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def check(in_size: tuple[int, int], out_size: tuple[int, int], resample: int, seed: int = 0,
          torch_too: bool = True) -> None:
    """Both resamplers (and a random window of the compiled one, written into a canvas)."""
    pixels = noise(*in_size, seed)
    expected = np.asarray(Image.fromarray(pixels).resize(out_size, resample))
    results = {"numba": resize_array(pixels, out_size, resample)[..., :3]}
    if torch_too:
        results["torch"] = resize(torch.from_numpy(pixels), out_size, resample).numpy()
    for name, got in results.items():
        assert got.shape == expected.shape, (name, in_size, out_size, resample)
        if not np.array_equal(got, expected):
            bad = int((got != expected).sum())
            raise AssertionError(f"{name}: {in_size} -> {out_size} filter {resample}: {bad} bytes differ")
    rng = random.Random(seed)
    (w, h) = out_size
    left, top = rng.randrange(w), rng.randrange(h)
    width, height = rng.randint(1, w - left), rng.randint(1, h - top)
    canvas = np.zeros((height + 3, width + 2, rng.choice([3, 4])), dtype=np.uint8)
    resize_array(pixels, out_size, resample, window=(left, top, width, height), out=canvas[1 : 1 + height, 2:])
    assert np.array_equal(canvas[1 : 1 + height, 2:, :3], expected[top : top + height, left : left + width])
    assert not canvas[0].any() and not canvas[1 + height :].any() and not canvas[:, :2].any()


def random_pairs(n: int, seed: int, max_side: int) -> list[tuple[tuple[int, int], tuple[int, int], int]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        w, h = rng.randint(1, max_side), rng.randint(1, max_side)
        kind = rng.random()
        if kind < 0.15:  # one side kept: a single pass
            out = (w, rng.randint(1, max_side)) if rng.random() < 0.5 else (rng.randint(1, max_side), h)
        elif kind < 0.3:  # extreme ratios and 1-px sides
            out = (rng.choice([1, 2, 3, w * 7 + 1]), rng.choice([1, 2, h * 5 + 3]))
        else:
            out = (rng.randint(1, max_side), rng.randint(1, max_side))
        pairs.append(((w, h), out, rng.choice(FILTERS)))
    return pairs


QUICK = [
    ((1, 1), (1, 1)), ((1, 1), (7, 3)), ((7, 3), (1, 1)), ((1, 50), (30, 1)), ((50, 1), (1, 30)),
    ((2000, 3), (448, 448)), ((3, 2000), (336, 9)), ((640, 480), (448, 336)), ((480, 640), (336, 448)),
    ((100, 300), (99, 120)), ((300, 100), (120, 99)), ((13, 400), (336, 10338)), ((257, 255), (256, 256)),
]


@pytest.mark.parametrize("resample", FILTERS)
@pytest.mark.parametrize(("in_size", "out_size"), QUICK)
def test_hand_picked_pairs(in_size: tuple[int, int], out_size: tuple[int, int], resample: int) -> None:
    check(in_size, out_size, resample)


def test_random_pairs_quick() -> None:
    for i, (in_size, out_size, resample) in enumerate(random_pairs(120, seed=1, max_side=160)):
        check(in_size, out_size, resample, seed=i)


@pytest.mark.slow
def test_random_pairs_sweep() -> None:
    """Thousands of pairs, small and large, every kind of ratio."""
    for i, (in_size, out_size, resample) in enumerate(random_pairs(3000, seed=2, max_side=300)):
        check(in_size, out_size, resample, seed=i, torch_too=i % 3 == 0)
    for i, (in_size, out_size, resample) in enumerate(random_pairs(60, seed=3, max_side=2500)):
        check(in_size, out_size, resample, seed=i)


def test_both_pass_orders_occur_and_match() -> None:
    """Shapes on each side of Pillow 13's rule, and its boundary (H - h == 2 (W - w))."""
    cases = [((160, 160), (119, 77)), ((160, 160), (119, 78)), ((160, 160), (119, 79)), ((160, 100), (149, 77)),
             ((160, 100), (149, 78)), ((120, 120), (60, 5)), ((90, 300), (100, 40)), ((300, 90), (40, 100))]
    orders = set()
    for in_size, out_size in cases:
        orders.add(vertical_first(in_size, out_size))
        for resample in FILTERS:
            check(in_size, out_size, resample)
    assert orders == {True, False}
    assert vertical_first((160, 160), (119, 77)) and not vertical_first((160, 160), (119, 78))  # 83 > 82; 82 = 82


def test_coefficients_match_hand_worked_bilinear_halving() -> None:
    """4 -> 2 bilinear: support 2 px, so output 0 (centre 1.0) reads pixels 0..2 at distances
    0.5, 0.5, 1.5 -> weights 0.75, 0.75, 0.25, normalised by their sum 1.75, times 2**22."""
    first, count, fixed = coefficients(4, 2, Image.Resampling.BILINEAR)
    # center 1.0: taps x=0..2 at distances 0.5/2, 0.5/2, 1.5/2 -> weights .75, .75, .25 / 1.75
    assert list(first) == [0, 1] and list(count) == [3, 3]
    unit = 1 << 22
    expected = [round(w / 1.75 * unit) for w in (0.75, 0.75, 0.25)]
    assert list(fixed[0, :3]) == expected and list(fixed[1, :3]) == expected[::-1]


def test_errors_name_what_is_valid() -> None:
    with pytest.raises(ValueError, match="BILINEAR"):
        coefficients(10, 5, Image.Resampling.LANCZOS)
    with pytest.raises(ValueError, match="uint8"):
        resize(torch.zeros((4, 4, 3)), (2, 2), Image.Resampling.BICUBIC)
    with pytest.raises(ValueError, match="uint8"):
        resize_array(np.zeros((4, 4, 2), dtype=np.uint8), (2, 2), Image.Resampling.BICUBIC)
    with pytest.raises(ValueError, match="positive"):
        resize(torch.zeros((4, 4, 3), dtype=torch.uint8), (0, 2), Image.Resampling.BICUBIC)
    with pytest.raises(ValueError, match="not inside"):
        resize_array(noise(4, 4, 0), (3, 3), Image.Resampling.BICUBIC, window=(1, 1, 3, 1))
    with pytest.raises(ValueError, match="auto, numba, pil, torch"):
        build_strategy("resize", backend="cv2")
    with pytest.raises(ValueError, match="cpu, cuda"):
        build_strategy("resize", device="tpu")
    with pytest.raises(ValueError, match="backend auto or torch"):
        build_strategy("resize", backend="numba", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA GPU"):
            build_strategy("resize", device="cuda")


def test_backends_agree_in_every_strategy() -> None:
    """A few sizes through each strategy: the compiled and the torch backends give Pillow's
    views (the full comparison with the transformers references is test_preprocess_fidelity).
    The torch backend on CPU tensors is the very code that runs with preprocess.device=cuda."""
    images = [Image.fromarray(noise(301, 177, 5)), Image.fromarray(noise(90, 260, 6)), Image.fromarray(noise(1, 1, 7))]
    for name in STRATEGIES.names():  # every registered strategy, new ones included
        pil = build_strategy(name, backend="pil")
        for backend in ("auto", "numba", "torch"):
            ours = build_strategy(name, backend=backend)
            assert ours.params() == pil.params()  # same pixels: the backend does not identify a run
            for im in images:
                assert torch.equal(ours.apply(im).pixel_values, pil.apply(im).pixel_values), (name, backend, im.size)


def test_same_size_returns_the_pixels() -> None:
    pixels = noise(20, 10, 7)
    assert np.array_equal(resize_array(pixels, (20, 10), Image.Resampling.BICUBIC)[..., :3], pixels)
    assert torch.equal(resize(torch.from_numpy(noise(5, 4, 1)), (5, 4), 3), torch.from_numpy(noise(5, 4, 1)))


def test_pixels_are_pillows_memory_and_outlive_the_image() -> None:
    """`rgbx` reads Pillow's own RGBX memory (no copy) and keeps it alive after the image goes."""
    import gc

    data = noise(300, 200, 8)
    image = Image.fromarray(data)
    pixels = rgbx(image)
    assert pixels.shape == (200, 300, 4) and not pixels.flags.writeable
    assert np.array_equal(pixels[..., :3], data)
    assert rgbx(image).__array_interface__["data"][0] == pixels.__array_interface__["data"][0]  # same memory
    del image
    gc.collect()
    Image.fromarray(noise(300, 200, 9))  # would reuse freed memory
    assert np.array_equal(pixels[..., :3], data)
    with pytest.raises(ValueError, match="RGB"):
        rgbx(Image.new("L", (3, 3)))
    assert np.array_equal(with_padding(data)[..., :3], data)


def test_transpose_is_pils() -> None:
    for size in [(1, 1), (3, 130), (200, 65), (64, 64)]:
        data = noise(*size, 10)
        expected = np.asarray(Image.fromarray(data).transpose(Image.Transpose.TRANSPOSE))
        assert np.array_equal(transpose_array(data)[..., :3], expected)


def test_serial_and_parallel_kernels_agree() -> None:
    """Workers run the serial copies of the kernels: same bytes as the parallel ones."""
    pixels = with_padding(noise(257, 131, 11))
    first, count, coef = (np.ascontiguousarray(a, dtype=np.int32) for a in coefficients(257, 90, 3))
    outs = []
    for compiled in (kernels.serial, kernels.parallel):
        out = np.empty((131, 90, 4), dtype=np.uint8)
        compiled["horizontal"](pixels.view(np.uint32)[..., 0], first, count, coef, out.view(np.uint32)[..., 0])
        outs.append(out)
    assert np.array_equal(*outs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_pillow() -> None:
    for i, (in_size, out_size, resample) in enumerate(random_pairs(200, seed=4, max_side=600)):
        pixels = noise(*in_size, i)
        expected = np.asarray(Image.fromarray(pixels).resize(out_size, resample))
        got = resize(torch.from_numpy(pixels).cuda(), out_size, resample).cpu().numpy()
        assert np.array_equal(got, expected), (in_size, out_size, resample)


def test_num_workers_auto() -> None:
    from harness.pipeline.runner import resolve_num_workers

    assert resolve_num_workers("auto", cuda=True, cores=16) == 8
    assert resolve_num_workers("auto", cuda=True, cores=2) == 1
    assert resolve_num_workers("auto", cuda=False, cores=2) == 0
    assert resolve_num_workers("auto", cuda=False, cores=16) == 4
    assert resolve_num_workers(3, cuda=False) == 3
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(ValueError, match="'auto'"):
            resolve_num_workers(bad, cuda=False)


def test_transposed_resize_moves_no_pixel() -> None:
    """`transposed=True` equals PIL's TRANSPOSE, resize, TRANSPOSE on both pass orders."""
    pairs = [*random_pairs(150, seed=5, max_side=120), ((160, 160), (77, 119), 2), ((160, 160), (78, 119), 3)]
    for i, (in_size, out_size, resample) in enumerate(pairs):
        pixels = noise(*in_size, i)
        flipped = Image.fromarray(pixels).transpose(Image.Transpose.TRANSPOSE)
        expected = np.asarray(flipped.resize(out_size, resample).transpose(Image.Transpose.TRANSPOSE))
        got = resize_array(pixels, (out_size[1], out_size[0]), resample, transposed=True)[..., :3]
        assert np.array_equal(got, expected), (in_size, out_size, resample)


def test_pixels_are_copied_when_pillow_cannot_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the Arrow export (an older Pillow, an image in several blocks) the pixels are copied."""
    import harness.preprocess.pixels as pixels_module

    def no_export(_image: object) -> None:
        raise TypeError("no __arrow_c_array__")

    data = noise(37, 21, 12)
    monkeypatch.setattr(pixels_module.pa, "array", no_export)
    pixels = rgbx(Image.fromarray(data))
    assert pixels.shape == (21, 37, 4) and np.array_equal(pixels[..., :3], data)
    assert np.array_equal(build_strategy("center_crop").apply(Image.fromarray(data)).pixel_values,
                          build_strategy("center_crop", backend="pil").apply(Image.fromarray(data)).pixel_values)


def test_outputs_whose_pixels_are_not_whole_words() -> None:
    """The kernels store 4-byte pixels; any other `out` (every other pixel of a canvas, RGB) gets
    the same bytes through an RGBX result, and nothing around it is touched."""
    pixels = noise(203, 151, 13)
    expected = np.asarray(Image.fromarray(pixels).resize((60, 45), Image.Resampling.BILINEAR))
    for channels in (3, 4):
        canvas = np.zeros((45, 120, channels), dtype=np.uint8)
        resize_array(pixels, (60, 45), Image.Resampling.BILINEAR, out=canvas[:, ::2])
        assert np.array_equal(canvas[:, ::2, :3], expected), channels
        assert not canvas[:, 1::2].any()
