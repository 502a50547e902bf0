"""Compiled loops (numba) over COCO RLE runs: the layer stack, the per-region crops, nearest resampling.

Each kernel is the plain loop its caller documents; numpy versions of the same work need an image- or
area-sized temporary per step (index expansion, gathers, scatters), which is what these loops save. Compiled on
first use and cached on disk (``cache=True``); no fast-math, so results are those of the numpy expressions.
This module is imported lazily by :mod:`amodaldata.layers` and :mod:`amodaldata.targets`, so reading data or
the command line's help does not pay for importing numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def decode_runs(text: np.ndarray, text_ends: np.ndarray, n_pix: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The runs of ones ``[start, end)`` (column-major flat positions) of several COCO compressed RLE strings
    joined in ``text`` (uint8; string i ends at ``text_ends[i]``) on images of ``n_pix`` pixels, and
    ``run_offsets`` (string i's runs are ``run_offsets[i]:run_offsets[i + 1]``).

    pycocotools' ``rleFrString``: each number is little-endian 5-bit groups (char - 48; 0x20: more groups
    follow; 0x10 in the last group: negative), and from the fourth number on it is stored as the difference to
    the number two places before it. Counts alternate zeros and ones, zeros first. The last value is the index
    of the first string that is not a valid RLE of ``n_pix`` pixels (a character outside '0'..'o', a number cut
    off, a negative count, counts not adding up to ``n_pix``), -1 when all are: the runs are only meaningful
    then, and nothing past ``n_pix`` is ever produced.
    """
    n = text_ends.size
    capacity = text.size // 2 + n + 1          # a count takes at least one character; half of them are runs
    starts = np.empty(capacity, dtype=np.int64)
    ends = np.empty(capacity, dtype=np.int64)
    run_offsets = np.zeros(n + 1, dtype=np.int64)
    runs = 0
    p = 0
    for i in range(n):
        position = 0
        m = 0
        back1 = 0                             # counts m - 1 and m - 2
        back2 = 0
        while p < text_ends[i]:
            x = 0
            k = 0
            more = True
            while more:
                if p >= text_ends[i] or k > 12:
                    return starts[:runs], ends[:runs], run_offsets, i
                c = np.int64(text[p]) - 48
                if c < 0 or c > 63:
                    return starts[:runs], ends[:runs], run_offsets, i
                x |= (c & 0x1F) << (5 * k)
                more = (c & 0x20) != 0
                p += 1
                k += 1
                if not more and (c & 0x10) != 0:
                    x |= np.int64(-1) << (5 * k)
            if m > 2:
                x += back2
            if x < 0 or position + x > n_pix:
                return starts[:runs], ends[:runs], run_offsets, i
            if m % 2 == 1 and x > 0:
                starts[runs] = position
                ends[runs] = position + x
                runs += 1
            position += x
            back2 = back1
            back1 = x
            m += 1
        if position != n_pix:
            return starts[:runs], ends[:runs], run_offsets, i
        run_offsets[i + 1] = runs
    return starts[:runs], ends[:runs], run_offsets, -1


@njit(cache=True, nogil=True)
def lay_runs(starts: np.ndarray, ends: np.ndarray, run_offsets: np.ndarray, count: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running-count pass over regions given as runs (nearest region first, see :func:`decode_runs`):
    each region's pixels ``[start, end)`` are laid in turn, its level at a pixel being the number of nearer
    regions already there, and ``count`` (zeros, one per pixel, of the caller's dtype) is raised by one.

    Returns every region's pixel positions and levels, concatenated, and ``area_offsets`` (region i's are
    ``area_offsets[i]:area_offsets[i + 1]``).
    """
    n = run_offsets.size - 1
    area_offsets = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        area = 0
        for r in range(run_offsets[i], run_offsets[i + 1]):
            area += ends[r] - starts[r]
        area_offsets[i + 1] = area_offsets[i] + area
    pixels = np.empty(area_offsets[n], dtype=np.int64)
    levels = np.empty(area_offsets[n], dtype=count.dtype)
    o = 0
    for r in range(run_offsets[n]):
        for p in range(starts[r], ends[r]):
            level = count[p]
            pixels[o] = p
            levels[o] = level
            count[p] = level + 1
            o += 1
    return pixels, levels, area_offsets


@njit(cache=True, nogil=True)
def lay_pixels(pixels: np.ndarray, area_offsets: np.ndarray, count: np.ndarray) -> np.ndarray:
    """:func:`lay_runs` for regions given as pixel positions (concatenated, nearest region first, unique within
    a region): returns the levels and raises ``count``."""
    levels = np.empty(pixels.size, dtype=count.dtype)
    for o in range(area_offsets[-1]):
        p = pixels[o]
        level = count[p]
        levels[o] = level
        count[p] = level + 1
    return levels


@njit(cache=True, nogil=True)
def fill_ids(ids: np.ndarray, pixels: np.ndarray, levels: np.ndarray, area_offsets: np.ndarray,
             region_ids: np.ndarray, n_pix: int) -> None:
    """``ids[level * n_pix + pixel] = region id`` for every laid pixel: the stack's slices, flat."""
    for i in range(region_ids.size):
        rid = region_ids[i]
        for o in range(area_offsets[i], area_offsets[i + 1]):
            ids[np.int64(levels[o]) * n_pix + pixels[o]] = rid


@njit(cache=True, nogil=True)
def column_major_box(pixels: np.ndarray, height: int) -> tuple[int, int, int, int, np.ndarray]:
    """The box ``(x0, y0, x1, y1)`` (ends exclusive) of a non-empty region given by its ascending column-major
    pixel positions ``x * height + y``, and each pixel's position ``(x - x0) * (y1 - y0) + (y - y0)`` in the
    region's crop stored column-major. Columns are stepped through in order, so no pixel needs a division."""
    x0 = pixels[0] // height
    x1 = pixels[-1] // height + 1
    y0 = height
    y1 = 0
    column = x0 * height                       # the position of (x, 0) for the current column x
    for o in range(pixels.size):
        while pixels[o] >= column + height:
            column += height
        y = pixels[o] - column
        y0 = min(y0, y)
        y1 = max(y1, y + 1)
    bh = y1 - y0
    local = np.empty(pixels.size, dtype=np.int64)
    column = x0 * height
    shift = y0                                 # (x - x0) * (height - bh) + y0 for the current column
    for o in range(pixels.size):
        while pixels[o] >= column + height:
            column += height
            shift += height - bh
        local[o] = pixels[o] - x0 * height - shift
    return x0, y0, x1, y1, local


@njit(cache=True, nogil=True)
def resample_runs(starts: np.ndarray, ends: np.ndarray, run_offsets: np.ndarray, height: int, row: np.ndarray,
                  column: np.ndarray, out: np.ndarray) -> None:
    """Nearest resampling of masks given as runs (:func:`decode_runs`) on a ``height``-row image: source pixel
    (x, y) lands on target pixel (``column[x]``, ``row[y]``), or nowhere where either is -1 (each source row
    and column feeds at most one target one, as in downsampling). Sets ``out[i, column[x], row[y]]`` (bool,
    zeros, ``(n, w, h)``: each mask column-major) for every pixel of mask i; only the runs' pieces in kept
    columns are visited."""
    for i in range(run_offsets.size - 1):
        for r in range(run_offsets[i], run_offsets[i + 1]):
            p = starts[r]
            x = p // height
            y = p - x * height
            while p < ends[r]:
                stop = min(height, y + ends[r] - p)       # this run's piece in column x
                c = column[x]
                if c >= 0:
                    for source_row in range(y, stop):
                        target_row = row[source_row]
                        if target_row >= 0:
                            out[i, c, target_row] = True
                p += stop - y
                x += 1
                y = 0
