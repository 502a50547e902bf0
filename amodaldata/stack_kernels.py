"""Compiled loops (numba) over COCO RLE runs (decoded by :func:`amodaldata.rle.decode_runs`): the layer stack,
the per-region crops, nearest resampling.

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
def lay_runs(starts: np.ndarray, ends: np.ndarray, run_offsets: np.ndarray, count: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running-count pass over regions given as runs (nearest region first, see :func:`amodaldata.rle.decode_runs`):
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
    """Nearest resampling of masks given as runs (:func:`amodaldata.rle.decode_runs`) on a ``height``-row image: source pixel
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
