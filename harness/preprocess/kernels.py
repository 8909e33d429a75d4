"""Compiled CPU loops of the preprocessing: Pillow's two resize passes and the tile normaliser.

numba compiles these once per process (cached next to this file, like Python's own bytecode)
into machine code that shares the rows of an image between the CPU's cores. The arithmetic is
Pillow's own (`src/libImaging/Resample.c`, 8 bits per channel): 32-bit integer sums that start
at half of the fixed-point unit, taps multiplied by the 22-bit coefficients, an arithmetic
shift, a clip to 0..255, so the pixels are Pillow's bit for bit. What differs is the order of
the loops, so that the compiler can vectorise them: the vertical pass adds whole rows (Pillow
walks columns), and the horizontal pass first transposes a block of rows, moving 4-byte
pixels, and then adds whole columns of that block.

Pixels are RGBX, 4 bytes each (Pillow's own memory layout of RGB images, which it hands out
without a copy, see `harness.preprocess.pixels`), and the resize passes write them as whole
4-byte words, the shift and clip vectorised like the sums.

Each kernel exists twice: `parallel` (all cores, for the main process) and `serial` (for
DataLoader workers, which already run one per core and must not start thread pools after a
fork).
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic
from torch.utils.data import get_worker_info

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision of the 8-bit coefficients
HALF = 1 << (PRECISION_BITS - 1)
ROW_BLOCK = 32  # image rows the horizontal pass transposes and filters together
TRANSPOSE_BLOCK = 64  # pixels per side of the square blocks `transpose` moves at a time
VIEW_BLOCK = 16  # output rows of a bicubic view one core makes together
LINES_HELD = 8  # source lines filtered along x a view block keeps (an output row's 4 taps and the shared ones)


def _horizontal(src, first, count, coef, out):
    """out[r, x] = Pillow's horizontal pass of row r at output column x, as an RGBX word.

    src: uint32 [R, W] (RGBX pixels); first/count/coef: the taps of the w output columns
    (int32, `first` and `first + count` non-decreasing); out: uint32 [R, w] (RGBX pixels; rows
    may lie anywhere, e.g. in a canvas). A block of rows is transposed in, filtered a column at
    a time (the shift and clip vectorised too) and transposed back out, a word per pixel."""
    rows, width = out.shape
    lo = first[0]
    hi = first[width - 1] + count[width - 1]
    for block in prange((rows + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = block * ROW_BLOCK
        n = min(ROW_BLOCK, rows - r0)
        columns = np.empty((hi - lo, n), dtype=np.uint32)
        for r in range(n):  # read along rows (contiguous), write down the columns
            line = src[r0 + r, lo:hi]
            for x in range(hi - lo):
                columns[x, r] = line[x]
        lanes = columns.view(np.uint8)  # [hi - lo, n * 4]: a column's bytes, row after row
        total = np.empty(n * 4, dtype=np.int32)
        filtered = np.empty((width, n), dtype=np.uint32)  # output columns, a word per row
        filtered_lanes = filtered.view(np.uint8)
        for x in range(width):
            total[:] = HALF
            start = first[x] - lo
            weights = coef[x]
            for k in range(count[x]):
                line = lanes[start + k]
                weight = weights[k]
                for i in range(n * 4):
                    total[i] = np.int32(total[i] + np.int32(line[i]) * weight)  # 32-bit, as Pillow's INT32
            column = filtered_lanes[x]
            for i in range(n * 4):
                value = total[i] >> PRECISION_BITS
                column[i] = min(max(value, 0), 255)
        for r in range(n):  # transpose back: read down the columns, write along the rows
            line = out[r0 + r]
            for x in range(width):
                line[x] = filtered[x, r]


def _vertical(src, col0, first, count, coef, out):
    """out[y, x] = Pillow's vertical pass at output row y of pixel column `col0 + x`, as an RGBX word.

    src: uint8 [H, W*4] (RGBX rows); first/count/coef: the taps of the h output rows;
    out: uint32 [h, w] (RGBX pixels; rows may lie anywhere)."""
    rows, width = out.shape
    lanes = width * 4
    for y in prange(rows):
        start = first[y]
        weights = coef[y]
        total = np.full(lanes, HALF, dtype=np.int32)
        for k in range(count[y]):
            line = src[start + k, col0 * 4 : col0 * 4 + lanes]  # a slice, so the loop below vectorises
            weight = weights[k]
            for i in range(lanes):
                total[i] = np.int32(total[i] + np.int32(line[i]) * weight)
        clipped = np.empty(width, dtype=np.uint32)
        clipped_lanes = clipped.view(np.uint8)
        for i in range(lanes):
            value = total[i] >> PRECISION_BITS
            clipped_lanes[i] = min(max(value, 0), 255)
        line_out = out[y]
        for x in range(width):
            line_out[x] = clipped[x]


def _transpose(src, out):
    """out[x, y] = src[y, x] for 4-byte pixels, in square blocks that stay in cache."""
    height, width = src.shape
    blocks_x = (width + TRANSPOSE_BLOCK - 1) // TRANSPOSE_BLOCK
    for block in prange(((height + TRANSPOSE_BLOCK - 1) // TRANSPOSE_BLOCK) * blocks_x):
        y0 = (block // blocks_x) * TRANSPOSE_BLOCK
        x0 = (block % blocks_x) * TRANSPOSE_BLOCK
        for x in range(x0, min(x0 + TRANSPOSE_BLOCK, width)):
            for y in range(y0, min(y0 + TRANSPOSE_BLOCK, height)):
                out[x, y] = src[y, x]


def _normalize_tiles(src, rows, cols, table, out):
    """Cut `src [rows*th, cols*tw, C]` (C >= 3) into row-major tiles and normalise them by table
    lookup into float32 `out [rows*cols, 3, th, tw]` in one pass (cut, HWC -> CHW, lookup)."""
    tile_h, tile_w = out.shape[2], out.shape[3]
    for line in prange(rows * tile_h):
        r = line // tile_h
        y = line - r * tile_h
        pixels = src[line]
        for tile_col in range(cols):
            tile = out[r * cols + tile_col]
            x0 = tile_col * tile_w
            for c in range(3):
                lookup = table[c]
                dst = tile[c, y]
                for x in range(tile_w):
                    dst[x] = lookup[pixels[x0 + x, c]]


@intrinsic
def _fma(typingctx, a, b, c):
    """float32 a*b + c rounded once (LLVM's fma: the CPU's instruction, or an exact emulation)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(inline="always", cache=True)
def _cubic(t0, t1, t2, t3, w0, w1, w2, w3):
    """One axis of torch's bicubic interpolation: its 4 taps weighted in the order of torch's
    compiled loop, `fma(t3, w3, fma(t2, w2, fma(t0, w0, t1 * w1)))`, rounded as float32."""
    return _fma(t3, w3, _fma(t2, w2, _fma(t0, w0, t1 * w1)))


def _cubic_view(src, table, factor_y, factor_x, weights_y, weights_x, out):
    """out[c, i, j] = torch's bicubic resize (`F.interpolate(mode="bicubic")`, A = -0.75) of
    the normalised `table[c][src[..., c]]` to `out`'s size, for whole downscale factors, in
    torch's float32 arithmetic: `_cubic` along x first, then along y over the 4 row results.
    With a whole factor k the source point of output i is `i*k + (k-1)/2`, so its taps are
    `i*k + (k-1)//2 - 1 .. + 2` (clamped to the image) and the 4 weights are the same for every
    output. An axis whose weights are
    (0, 1, 0, 0) (an odd factor) gives its second tap exactly (t1 * 1 plus three signed zeros),
    so only that tap is read. src: uint8 [H, W, C >= 3] (any strides); out: float32 [3, h, w]."""
    height, width = out.shape[1], out.shape[2]
    last_y, last_x = src.shape[0] - 1, src.shape[1] - 1
    w0, w1, w2, w3 = weights_x[0], weights_x[1], weights_x[2], weights_x[3]
    v0, v1, v2, v3 = weights_y[0], weights_y[1], weights_y[2], weights_y[3]
    exact_y = v1 == 1.0 and v0 == 0.0
    exact_x = w1 == 1.0 and w0 == 0.0
    for i in prange(height):
        y = i * factor_y + (factor_y - 1) // 2
        l0, l1, l2, l3 = src[max(y - 1, 0)], src[y], src[min(y + 1, last_y)], src[min(y + 2, last_y)]
        for c in range(3):
            lookup = table[c]
            dst = out[c, i]
            for j in range(width):
                x1 = j * factor_x + (factor_x - 1) // 2
                if exact_x:
                    b = lookup[l1[x1, c]]
                    if exact_y:
                        dst[j] = b
                        continue
                    a, d, e = lookup[l0[x1, c]], lookup[l2[x1, c]], lookup[l3[x1, c]]
                else:
                    x0, x2, x3 = max(x1 - 1, 0), min(x1 + 1, last_x), min(x1 + 2, last_x)
                    b = _cubic(lookup[l1[x0, c]], lookup[l1[x1, c]], lookup[l1[x2, c]], lookup[l1[x3, c]],
                               w0, w1, w2, w3)
                    if exact_y:
                        dst[j] = b
                        continue
                    a = _cubic(lookup[l0[x0, c]], lookup[l0[x1, c]], lookup[l0[x2, c]], lookup[l0[x3, c]],
                               w0, w1, w2, w3)
                    d = _cubic(lookup[l2[x0, c]], lookup[l2[x1, c]], lookup[l2[x2, c]], lookup[l2[x3, c]],
                               w0, w1, w2, w3)
                    e = _cubic(lookup[l3[x0, c]], lookup[l3[x1, c]], lookup[l3[x2, c]], lookup[l3[x3, c]],
                               w0, w1, w2, w3)
                dst[j] = _cubic(a, b, d, e, v0, v1, v2, v3)


def _cubic_view_pairs(src, table, factor_y, factor_x, weights_y, weights_x, out):
    """`_cubic_view` for a downscale factor of 2 along x (`factor_x` must be 2), where
    neighbouring outputs share taps: every pixel is a tap of two outputs along x (and, with a
    factor of 2 along y, every line a tap of two output rows). So each source line is
    normalised once, filtered along x at the fixed stride 2 (which the compiler vectorises) and
    kept for the output rows that share it; then the rows are filtered along y. Same arithmetic,
    same order, so the same bits as `_cubic_view`."""
    height, width = out.shape[1], out.shape[2]
    in_h, in_w = src.shape[0], src.shape[1]
    w0, w1, w2, w3 = weights_x[0], weights_x[1], weights_x[2], weights_x[3]
    v0, v1, v2, v3 = weights_y[0], weights_y[1], weights_y[2], weights_y[3]
    exact_y = v1 == 1.0 and v0 == 0.0
    if factor_x != 2:
        raise ValueError("cubic_view_pairs takes a downscale factor of 2 along x only")
    for block in prange((height + VIEW_BLOCK - 1) // VIEW_BLOCK):
        filtered = np.empty((LINES_HELD, 3, width), dtype=np.float32)  # source line y in slot y % LINES_HELD
        held = np.full(LINES_HELD, -1, dtype=np.int64)
        line = np.empty(in_w + 2, dtype=np.float32)  # a normalised line, pixel x at x + 1, edges repeated
        for i in range(block * VIEW_BLOCK, min((block + 1) * VIEW_BLOCK, height)):
            y1 = i * factor_y + (factor_y - 1) // 2
            taps = (min(max(y1 - 1, 0), in_h - 1), y1, min(y1 + 1, in_h - 1), min(y1 + 2, in_h - 1))
            for t in range(4):
                y = taps[t]
                if (exact_y and t != 1) or held[y % LINES_HELD] == y:
                    continue
                held[y % LINES_HELD] = y
                pixels = src[y]
                for c in range(3):
                    lookup = table[c]
                    for x in range(in_w):
                        line[x + 1] = lookup[pixels[x, c]]
                    line[0] = line[1]
                    line[in_w + 1] = line[in_w]
                    row = filtered[y % LINES_HELD, c]
                    for j in range(width):  # taps 2j - 1 .. 2j + 2 at line[2j .. 2j + 3]
                        row[j] = _cubic(line[2 * j], line[2 * j + 1], line[2 * j + 2], line[2 * j + 3],
                                        w0, w1, w2, w3)
            for c in range(3):
                dst = out[c, i]
                b = filtered[y1 % LINES_HELD, c]
                if exact_y:
                    for j in range(width):
                        dst[j] = b[j]
                    continue
                a = filtered[taps[0] % LINES_HELD, c]
                d = filtered[taps[2] % LINES_HELD, c]
                e = filtered[taps[3] % LINES_HELD, c]
                for j in range(width):
                    dst[j] = _cubic(a[j], b[j], d[j], e[j], v0, v1, v2, v3)


def _compile(function, parallel: bool):
    """A compiled copy of `function`; the copy has its own name so that numba's on-disk cache
    keeps the parallel and the serial machine code apart."""
    suffix = "_parallel" if parallel else "_serial"
    copy = pytypes.FunctionType(function.__code__, function.__globals__, function.__name__ + suffix)
    copy.__qualname__ = function.__qualname__ + suffix
    return njit(parallel=parallel, cache=True, nogil=True)(copy)


_KERNELS = {"horizontal": _horizontal, "vertical": _vertical, "transpose": _transpose,
            "normalize_tiles": _normalize_tiles, "cubic_view": _cubic_view, "cubic_view_pairs": _cubic_view_pairs}
parallel = {name: _compile(f, True) for name, f in _KERNELS.items()}
serial = {name: _compile(f, False) for name, f in _KERNELS.items()}


def for_this_process() -> dict:
    """The serial kernels inside a DataLoader worker (one worker per core already, and no
    thread pool may start after a fork), the parallel ones elsewhere."""
    return serial if get_worker_info() is not None else parallel
