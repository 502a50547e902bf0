"""Compiled loops of the generators (numba, the only module that imports it): pycocotools' polygon
rasteriser re-implemented exactly, COCO's compressed RLE text code, and the shapes painter.

:func:`polygon_counts` gives the COCO RLE counts of one polygon bit for bit as pycocotools' ``rleFrPoly``
(``maskApi.c``, what ``mask.frPyObjects`` runs), by doing the same integer and IEEE double operations in
the same order (no fastmath, so nothing is fused or reordered):

1. vertices go to a 1/5 px grid, ``(int)(5 x + 0.5)`` (C's cast truncates toward zero);
2. each edge, oriented to run forward along its major axis, is walked one grid step at a time; the minor
   coordinate is ``(int)(a + s * t + 0.5)`` with ``s = minor / major`` (an edge whose two ends fall on one grid
   point divides 0 by 0 in C, and only feeds points that are never read: here ``s`` is 0 there);
3. where consecutive points change column, the crossing is kept if it lies on a pixel column inside the
   image; its row is rounded up and clamped to ``[0, H]``, giving a column-major boundary ``x * H + y``;
4. the boundaries and ``H * W`` are sorted and differenced; a zero difference merges its two neighbours.

The compiled code is cached on disk (``cache=True``), so only the first run on a machine compiles it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: pycocotools' sub-pixel grid: vertices are rounded to 1 / SCALE px.
SCALE = 5.0


@numba.njit(cache=True)
def polygon_counts(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """COCO RLE counts (column-major runs, zeros first) of the polygon ``xy`` (``(k, 2)`` float64 ``x, y``
    vertices) on a ``height`` x ``width`` image: exactly pycocotools' ``rleFrPoly`` (module doc)."""
    k = xy.shape[0]
    gx = np.empty(k + 1, np.int64)
    gy = np.empty(k + 1, np.int64)
    for j in range(k):
        gx[j] = int(SCALE * xy[j, 0] + 0.5)
        gy[j] = int(SCALE * xy[j, 1] + 0.5)
    gx[k] = gx[0]
    gy[k] = gy[0]
    m = 0
    for j in range(k):
        m += max(abs(gx[j] - gx[j + 1]), abs(gy[j] - gy[j + 1])) + 1
    u = np.empty(m, np.int64)
    v = np.empty(m, np.int64)
    m = 0
    for j in range(k):
        xs, xe, ys, ye = gx[j], gx[j + 1], gy[j], gy[j + 1]
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe = xe, xs
            ys, ye = ye, ys
        if dx >= dy:
            s = (ye - ys) / dx if dx > 0 else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u[m] = t + xs
                v[m] = int(ys + s * t + 0.5)
                m += 1
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v[m] = t + ys
                u[m] = int(xs + s * t + 0.5)
                m += 1
    bounds = np.empty(m + 1, np.int64)
    n = 0
    for j in range(1, m):
        if u[j] == u[j - 1]:
            continue
        xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / SCALE - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > width - 1:
            continue
        yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / SCALE - 0.5
        if yd < 0:
            yd = 0.0
        elif yd > height:
            yd = float(height)
        bounds[n] = int(xd) * height + int(math.ceil(yd))
        n += 1
    bounds[n] = height * width
    bounds = np.sort(bounds[:n + 1])
    counts = np.empty(n + 1, np.int64)
    counts[0] = bounds[0]
    c = 1
    j = 1
    while j <= n:
        step = bounds[j] - bounds[j - 1]
        j += 1
        if step > 0:
            counts[c] = step
            c += 1
        elif j <= n:                      # a repeated boundary: the runs on either side merge
            counts[c - 1] += bounds[j] - bounds[j - 1]
            j += 1
    return counts[:c]


@numba.njit(cache=True)
def polygons_counts(coords: np.ndarray, starts: np.ndarray, height: int, width: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`polygon_counts` of polygons ``coords[starts[i]:starts[i + 1]]``, concatenated, and the offsets of
    each polygon's counts in them."""
    n = starts.size - 1
    offsets = np.zeros(n + 1, np.int64)
    parts = []
    for i in range(n):
        part = polygon_counts(coords[starts[i]:starts[i + 1]], height, width)
        offsets[i + 1] = offsets[i] + part.size
        parts.append(part)
    out = np.empty(offsets[n], np.int64)
    for i in range(n):
        out[offsets[i]:offsets[i + 1]] = parts[i]
    return out, offsets


@numba.njit(cache=True)
def _rle_text(counts: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The compressed text of each counts list ``counts[offsets[i]:offsets[i + 1]]`` (see :func:`rle_strings`),
    as ASCII codes concatenated, and each text's end."""
    text = np.empty(counts.size * 8, np.uint8)      # a count below 2**39 takes at most 8 characters
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


def rle_strings(counts: np.ndarray, offsets: np.ndarray) -> list[str]:
    """COCO compressed RLE ``counts`` strings of the counts lists ``counts[offsets[i]:offsets[i + 1]]``: the
    ``rleToString`` code of pycocotools (from the fourth count on, the difference to the count two places
    back; 5 bits per character, bit 0x20 = more characters follow, offset 48)."""
    text, ends = _rle_text(counts, offsets)
    whole = text.tobytes().decode("ascii")
    starts = [0, *ends[:-1].tolist()]
    return [whole[a:b] for a, b in zip(starts, ends.tolist())]


# -- the shapes painter ----------------------------------------------------------------------------------
@numba.njit(cache=True)
def _erode(pixels: np.ndarray, height: int, width: int, radius: int) -> tuple[np.ndarray, int, int]:
    """The mask of ``pixels`` (column-major indices) eroded ``radius`` times, alternating a 4-neighbour cross
    (even steps) and a 3x3 square (odd steps); pixels outside the image count as inside the mask.

    Returns the eroded mask over the pixels' bounding box as a ``(columns, rows)`` array and the box's first
    column and row."""
    x0, x1, y0, y1 = width, -1, height, -1
    for p in pixels:
        x, y = p // height, p % height
        x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
    cols, rows = x1 - x0 + 1 + 2 * radius, y1 - y0 + 1 + 2 * radius
    a = np.zeros((cols, rows), np.uint8)
    for i in range(cols):
        x = x0 - radius + i
        for j in range(rows):
            y = y0 - radius + j
            if x < 0 or x >= width or y < 0 or y >= height:
                a[i, j] = 1
    for p in pixels:
        a[p // height - x0 + radius, p % height - y0 + radius] = 1
    b = np.zeros_like(a)
    for step in range(radius):
        for i in range(step + 1, cols - step - 1):
            for j in range(step + 1, rows - step - 1):
                if step % 2 == 0:
                    b[i, j] = a[i, j] & a[i - 1, j] & a[i + 1, j] & a[i, j - 1] & a[i, j + 1]
                else:
                    b[i, j] = (a[i - 1, j - 1] & a[i - 1, j] & a[i - 1, j + 1] & a[i, j - 1] & a[i, j]
                               & a[i, j + 1] & a[i + 1, j - 1] & a[i + 1, j] & a[i + 1, j + 1])
        a, b = b, a
    return a[radius:cols - radius, radius:rows - radius], x0, y0


@numba.njit(cache=True)
def paint_shapes(coords: np.ndarray, starts: np.ndarray, height: int, width: int, outline_px: int,
                 keep_hidden: bool, count: np.ndarray, top: np.ndarray, edge: np.ndarray):
    """Rasterise and lay the polygons ``coords[starts[i]:starts[i + 1]]`` (draw order, later = nearer) from the
    nearest to the farthest on column-major arrays (index ``x * height + y``).

    ``count`` (zeros, an unsigned type holding the number of shapes) becomes the number of shapes at each
    pixel; a shape's level at a pixel is the count of nearer shapes already there. A shape with no pixel, or
    (unless ``keep_hidden``) no level-0 pixel, is skipped. ``top`` (zeros) becomes the draw index + 1 of the
    nearest shape, and ``edge`` (False) True where the nearest shape shows its outline: its mask minus the
    erosion of :func:`_erode` by ``outline_px``.

    Returns the kept draw indices (nearest first); their amodal RLE counts, column-major pixel indices
    (ascending) and levels, each concatenated, with the offsets of each shape's part; and the depth of the
    stack (the largest count).
    """
    n = starts.size - 1
    kept = []
    counts_parts = []
    pixel_parts = []
    level_parts = []
    depth = 0
    for i in range(n - 1, -1, -1):
        cnts = polygon_counts(coords[starts[i]:starts[i + 1]], height, width)
        area = 0
        for r in range(1, cnts.size, 2):
            area += cnts[r]
        pixels = np.empty(area, np.int64)
        pos = 0
        k = 0
        for r in range(cnts.size):
            if r % 2 == 1:
                for p in range(pos, pos + cnts[r]):
                    pixels[k] = p
                    k += 1
            pos += cnts[r]
        if area == 0:
            continue
        hidden = True
        for p in pixels:
            if count[p] == 0:
                hidden = False
                break
        if hidden and not keep_hidden:
            continue
        levels = np.empty(area, count.dtype)
        for k in range(area):
            p = pixels[k]
            level = count[p]
            levels[k] = level
            if level == 0:
                top[p] = i + 1
            count[p] = level + 1
            depth = max(depth, int(level) + 1)
        if outline_px > 0:
            inner, x0, y0 = _erode(pixels, height, width, outline_px)
            for k in range(area):
                if levels[k] == 0:
                    p = pixels[k]
                    if inner[p // height - x0, p % height - y0] == 0:
                        edge[p] = True
        kept.append(i)
        counts_parts.append(cnts)
        pixel_parts.append(pixels)
        level_parts.append(levels)
    m = len(kept)
    counts_offsets = np.zeros(m + 1, np.int64)
    pixel_offsets = np.zeros(m + 1, np.int64)
    for k in range(m):
        counts_offsets[k + 1] = counts_offsets[k] + counts_parts[k].size
        pixel_offsets[k + 1] = pixel_offsets[k] + pixel_parts[k].size
    all_counts = np.empty(counts_offsets[m], np.int64)
    all_pixels = np.empty(pixel_offsets[m], np.int64)
    all_levels = np.empty(pixel_offsets[m], count.dtype)
    for k in range(m):
        all_counts[counts_offsets[k]:counts_offsets[k + 1]] = counts_parts[k]
        all_pixels[pixel_offsets[k]:pixel_offsets[k + 1]] = pixel_parts[k]
        all_levels[pixel_offsets[k]:pixel_offsets[k + 1]] = level_parts[k]
    return (np.array(kept, np.int64) if m else np.zeros(0, np.int64), all_counts, counts_offsets, all_pixels,
            all_levels, pixel_offsets, depth)


@numba.njit(cache=True)
def stack_shapes(pixels: np.ndarray, levels: np.ndarray, offsets: np.ndarray, n_pix: int, ids: np.ndarray,
                 pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The layer stack of the laid shapes of :func:`paint_shapes` (``m`` shapes, nearest first, region id
    ``m - k`` for the k-th): fills ``ids`` (zeros, ``depth * n_pix``, slice-major then column-major) and sets
    ``pairs[a, b]`` for every region ``a`` in front of a region ``b`` at some pixel (``(m + 1, m + 1)`` bool).

    Returns each region's visible mask (level 0) as COCO RLE counts, concatenated nearest first, and their
    offsets."""
    m = offsets.size - 1
    visible_parts = []
    for k in range(m):
        rid = m - k
        runs = [0]                         # boundaries of the runs of visible pixels, from a run of zeros
        for j in range(offsets[k], offsets[k + 1]):
            p = pixels[j]
            level = levels[j]
            for nearer in range(level):
                pairs[ids[nearer * n_pix + p], rid] = True
            ids[level * n_pix + p] = rid
            if level == 0:
                if len(runs) > 1 and runs[-1] == p:       # extends the last run
                    runs[-1] = p + 1
                else:
                    runs.append(p)
                    runs.append(p + 1)
        runs.append(n_pix)
        cnts = np.empty(len(runs) - 1, np.int64)
        for r in range(cnts.size):
            cnts[r] = runs[r + 1] - runs[r]
        if cnts.size > 1 and cnts[-1] == 0:      # pycocotools ends on the last run, never on an empty one
            cnts = cnts[:-1]
        visible_parts.append(cnts)
    offsets_out = np.zeros(m + 1, np.int64)
    for k in range(m):
        offsets_out[k + 1] = offsets_out[k] + visible_parts[k].size
    out = np.empty(offsets_out[m], np.int64)
    for k in range(m):
        out[offsets_out[k]:offsets_out[k + 1]] = visible_parts[k]
    return out, offsets_out
