"""COCO compressed RLE, the one codec of the house (DESIGN.md, "One home per concept"), compiled with numba.

A mask of ``h x w`` pixels is a list of run lengths over its pixels in column-major order (``x * h + y``),
alternating zeros and ones, zeros first; pycocotools' text form (``rleToString`` / ``rleFrString`` in
``maskApi.c``) stores each number as little-endian 5-bit groups (character - 48; bit 0x20: more groups follow;
bit 0x10 of the last group: negative), and from the third number on as the difference to the number two places
before it. Every function here gives pycocotools' counts, character for character (``tests/test_rle.py``).

Compiled on first use and cached on disk (``cache=True``); no fast-math. Import this module lazily where numba
should not be paid for (reading polygons, the command line's help).
"""

from __future__ import annotations

import numpy as np
from numba import njit

Counts = str | bytes


# -- the compiled loops --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _number(text: np.ndarray, p: int, end: int) -> tuple[int, int, bool]:
    """The signed number whose text starts at ``text[p]`` (before the delta step), the position after it, and
    False when a character lies outside '0'..'o' or the number is cut off at ``end`` (or is too long)."""
    x = 0
    k = 0
    more = True
    while more:
        if p >= end or k > 12:
            return 0, p, False
        c = np.int64(text[p]) - 48
        if c < 0 or c > 63:
            return 0, p, False
        x |= (c & 0x1F) << (5 * k)
        more = (c & 0x20) != 0
        p += 1
        k += 1
        if not more and (c & 0x10) != 0:
            x |= np.int64(-1) << (5 * k)
    return x, p, True


@njit(cache=True, nogil=True)
def decode_runs(text: np.ndarray, text_ends: np.ndarray, n_pix: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The runs of ones ``[start, end)`` (column-major flat positions) of several compressed strings joined in
    ``text`` (uint8; string i ends at ``text_ends[i]``) on images of ``n_pix`` pixels, and ``run_offsets``
    (string i's runs are ``run_offsets[i]:run_offsets[i + 1]``).

    The last value is the index of the first string that is not a valid RLE of ``n_pix`` pixels (a character
    outside '0'..'o', a number cut off, a negative count, counts not adding up to ``n_pix``), -1 when all are:
    the runs are only meaningful then, and nothing past ``n_pix`` is ever produced.
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
            x, p, ok = _number(text, p, text_ends[i])
            if not ok:
                return starts[:runs], ends[:runs], run_offsets, i
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
def _lengths(text: np.ndarray, text_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Every count (signed, after the delta step) of the strings joined in ``text``, their offsets, and the index
    of the first string with a character outside '0'..'o' or a number cut off (-1 when none): no check of the
    counts' signs or sum, which is the caller's."""
    n = text_ends.size
    counts = np.empty(text.size, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    c = 0
    p = 0
    for i in range(n):
        while p < text_ends[i]:
            x, p, ok = _number(text, p, text_ends[i])
            if not ok:
                return counts[:c], offsets, i
            counts[c] = x + counts[c - 2] if c - offsets[i] > 2 else x
            c += 1
        offsets[i + 1] = c
    return counts[:c], offsets, -1


@njit(cache=True, nogil=True)
def _text(counts: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The compressed text of each counts list ``counts[offsets[i]:offsets[i + 1]]``, as ASCII codes
    concatenated, and each text's end."""
    text = np.empty(counts.size * 13, np.uint8)     # an int64 count takes at most 13 characters
    ends = np.empty(offsets.size - 1, np.int64)
    p = 0
    for i in range(offsets.size - 1):
        for j in range(offsets[i], offsets[i + 1]):
            x = counts[j]
            if j - offsets[i] > 2:
                x -= counts[j - 2]
            more = True
            while more:
                c = x & 0x1F
                x >>= 5
                more = x != -1 if c & 0x10 else x != 0
                if more:
                    c |= 0x20
                text[p] = c + 48
                p += 1
        ends[i] = p
    return text[:p], ends


@njit(cache=True, nogil=True)
def _bitmap_counts(columns: np.ndarray) -> np.ndarray:
    """The counts of a bitmap given column by column (``columns[x, y]``, any strides)."""
    width, height = columns.shape
    counts = np.empty(width * height + 1, np.int64)
    c = 0
    run = 0
    value = False
    for x in range(width):
        for y in range(height):
            on = columns[x, y] != 0
            if on != value:
                counts[c] = run
                c += 1
                run = 0
                value = on
            run += 1
    counts[c] = run
    return counts[:c + 1]


@njit(cache=True, nogil=True)
def _fill(starts: np.ndarray, ends: np.ndarray, flat: np.ndarray) -> None:
    """``flat[start:end] = True`` for every run."""
    for r in range(starts.size):
        flat[starts[r]:ends[r]] = True


# -- the codec -------------------------------------------------------------------------------------------------
def _joined(counts: list[Counts]) -> tuple[np.ndarray, np.ndarray]:
    raw = [c.encode("ascii") if isinstance(c, str) else bytes(c) for c in counts]
    return np.frombuffer(b"".join(raw), dtype=np.uint8), np.cumsum([len(r) for r in raw], dtype=np.int64)


def runs(counts: list[Counts], n_pix: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`decode_runs` of compressed ``counts`` strings of images of ``n_pix`` pixels."""
    text, text_ends = _joined(counts)
    return decode_runs(text, text_ends, n_pix)


def run_lengths(counts: Counts) -> np.ndarray:
    """The counts (int64, signed as stored) of one compressed string; raises ValueError on a character outside
    '0'..'o' or a number cut off."""
    text, text_ends = _joined([counts])
    lengths, _, bad = _lengths(text, text_ends)
    if bad >= 0:
        raise ValueError("RLE counts string has a character outside '0'..'o' or a number cut off")
    return lengths


def decode_many(counts: list[Counts]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every run of many compressed strings (assumed valid): per run, its string's index, the flat position
    where it ends (the cumulative run length) and its index in its string."""
    text, text_ends = _joined(counts)
    lengths, offsets, _ = _lengths(text, text_ends)
    sizes = np.diff(offsets)
    owner = np.repeat(np.arange(len(counts)), sizes)
    position = np.arange(lengths.size) - np.repeat(offsets[:-1], sizes)
    total = np.cumsum(lengths)
    return owner, total - np.repeat(total[offsets[:-1]] - lengths[offsets[:-1]], sizes), position


def strings(counts: np.ndarray, offsets: np.ndarray) -> list[str]:
    """The compressed strings of the counts lists ``counts[offsets[i]:offsets[i + 1]]`` (int64)."""
    text, ends = _text(np.asarray(counts, dtype=np.int64), np.asarray(offsets, dtype=np.int64))
    whole = text.tobytes().decode("ascii")
    return [whole[a:b] for a, b in zip([0, *ends[:-1].tolist()], ends.tolist())]


def split_at_columns(start: np.ndarray, end: np.ndarray, height: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column-major pixel intervals ``[start, end)`` (flat positions ``x * height + y``) split at the column
    ends: per piece, the index of its interval, its column and its rows ``[top, bottom)``, in interval order.
    An interval may run over several columns; an empty one gives no piece."""
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    kept = np.flatnonzero(end > start)
    start, end = start[kept], end[kept]
    first, last = start // height, (end - 1) // height
    count = last - first + 1
    piece = np.repeat(np.arange(start.size), count)
    k = np.arange(piece.size) - np.repeat(np.cumsum(count) - count, count)
    col = first[piece] + k
    top = np.where(k == 0, start[piece] - first[piece] * height, 0)
    bottom = np.where(col == last[piece], end[piece] - last[piece] * height, height)
    return kept[piece], col, top, bottom


def from_runs(starts: np.ndarray, ends: np.ndarray, height: int, width: int) -> dict:
    """``{"size": [h, w], "counts": str}`` of the column-major runs of ones ``[starts, ends)`` (sorted,
    disjoint, not touching)."""
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, ends
    counts = np.diff(np.concatenate(([0], bounds, [height * width])))
    if counts.size > 1 and counts[-1] == 0:     # pycocotools ends on the last run, never on an empty one
        counts = counts[:-1]
    return {"size": [height, width], "counts": strings(counts, np.array([0, counts.size]))[0]}


def encode(bitmap: np.ndarray) -> dict:
    """``{"size": [h, w], "counts": str}`` of a 2-D array (non-zero = in the mask): pycocotools' ``encode``."""
    bitmap = np.asarray(bitmap)
    counts = _bitmap_counts(bitmap.T)
    return {"size": [int(bitmap.shape[0]), int(bitmap.shape[1])],
            "counts": strings(counts, np.array([0, counts.size]))[0]}


def decode(rle: dict) -> np.ndarray:
    """The bool ``(h, w)`` bitmap (column-major in memory, as pycocotools') of a compressed RLE; raises
    ValueError when its counts are not a valid mask of its size."""
    height, width = int(rle["size"][0]), int(rle["size"][1])
    starts, ends, _, bad = runs([rle["counts"]], height * width)
    if bad >= 0:
        raise ValueError(f"RLE counts are not a valid mask of {height}x{width} pixels")
    flat = np.zeros(height * width, dtype=bool)
    _fill(starts, ends, flat)
    return flat.reshape(width, height).T
