"""Compiled loops of the generators (numba): pycocotools' polygon rasteriser re-implemented exactly, and the
shapes painter (the counts become RLE text in :mod:`amodaldata.rle`).

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
def _crossing(column: int, v: int, height: int, width: int) -> tuple[int, int]:
    """Step 3 of the module doc for a step of the walk between grid columns ``column`` and ``column + 1`` whose
    lower grid row is ``v``: the pixel column and row of the boundary it adds, or ``(-1, 0)`` when ``column``
    is not a pixel column of the image."""
    xd = (column + 0.5) / SCALE - 0.5
    if math.floor(xd) != xd or xd < 0 or xd > width - 1:
        return -1, 0
    yd = (v + 0.5) / SCALE - 0.5
    if yd < 0:
        yd = 0.0
    elif yd > height:
        yd = float(height)
    return int(xd), int(math.ceil(yd))


@numba.njit(cache=True)
def _sorted_boundaries(xs: np.ndarray, ys: np.ndarray, n: int, height: int, width: int) -> np.ndarray:
    """The boundaries ``xs[i] * height + ys[i]`` (``i < n``) and ``height * width``, ascending: bucketed by column,
    then an insertion sort, which only has to order the few boundaries of each column."""
    out = np.empty(n + 1, np.int64)
    out[n] = height * width
    if n == 0:
        return out
    x_lo, x_hi = xs[0], xs[0]
    for i in range(n):
        x_lo, x_hi = min(x_lo, xs[i]), max(x_hi, xs[i])
    slot = np.zeros(x_hi - x_lo + 2, np.int64)
    for i in range(n):
        slot[xs[i] - x_lo + 1] += 1
    for c in range(x_hi - x_lo + 1):
        slot[c + 1] += slot[c]
    for i in range(n):
        c = xs[i] - x_lo
        out[slot[c]] = xs[i] * height + ys[i]
        slot[c] += 1
    for i in range(1, n):
        value = out[i]
        j = i - 1
        while j >= 0 and out[j] > value:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = value
    return out


@numba.njit(cache=True)
def polygon_counts(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """COCO RLE counts (column-major runs, zeros first) of the polygon ``xy`` (``(k, 2)`` float64 ``x, y``
    vertices, ``|5 x|`` within C's int range) on a ``height`` x ``width`` image: exactly pycocotools'
    ``rleFrPoly`` (module doc).

    The boundaries are sorted before they become counts, so each edge's steps may be visited in any order:
    along an edge walked in x, only the steps from a grid column ``2 mod 5`` can hit a pixel column (its
    ``(column + .5) / 5 - .5`` is an integer exactly then), so only those are evaluated."""
    k = xy.shape[0]
    gx = np.empty(k + 1, np.int64)
    gy = np.empty(k + 1, np.int64)
    for j in range(k):
        gx[j] = int(SCALE * xy[j, 0] + 0.5)
        gy[j] = int(SCALE * xy[j, 1] + 0.5)
    gx[k] = gx[0]
    gy[k] = gy[0]
    n_steps = 0
    for j in range(k):
        n_steps += max(abs(gx[j] - gx[j + 1]), abs(gy[j] - gy[j + 1])) + 1
    bx = np.empty(n_steps, np.int64)              # the boundaries' pixel columns and rows
    by = np.empty(n_steps, np.int64)
    n = 0
    u_last = v_last = 0                          # the previous edge's last point
    for j in range(k):
        xs, xe, ys, ye = gx[j], gx[j + 1], gy[j], gy[j + 1]
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe = xe, xs
            ys, ye = ye, ys
        major = max(dx, dy)
        t_first, t_last = (major, 0) if flip else (0, major)
        if dx >= dy:
            s = (ye - ys) / dx if dx > 0 else 0.0
            u_first, v_first = xs + t_first, int(ys + s * t_first + 0.5)
        else:
            s = (xe - xs) / dy
            u_first, v_first = int(xs + s * t_first + 0.5), ys + t_first
        if j > 0 and u_first != u_last:          # the step from the previous edge's last point
            bx[n], by[n] = _crossing(u_first if u_first < u_last else u_first - 1, min(v_first, v_last), height,
                                     width)
            n += bx[n] >= 0
        if dx >= dy:                             # steps t -> t + 1 from grid column xs + t
            t = (2 - xs) % 5
            while t < dx:
                v = min(int(ys + s * t + 0.5), int(ys + s * (t + 1) + 0.5))
                bx[n], by[n] = _crossing(xs + t, v, height, width)
                n += bx[n] >= 0
                t += 5
            u_last, v_last = xs + t_last, int(ys + s * t_last + 0.5)
        else:                                    # steps t -> t + 1 that change the grid column
            u = int(xs + s * 0 + 0.5)
            for t in range(dy):
                u_next = int(xs + s * (t + 1) + 0.5)
                if u_next != u:
                    bx[n], by[n] = _crossing(min(u, u_next), ys + t, height, width)
                    n += bx[n] >= 0
                u = u_next
            u_last, v_last = int(xs + s * t_last + 0.5), ys + t_last
    bounds = _sorted_boundaries(bx, by, n, height, width)
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
def polygons_counts(coords: np.ndarray, starts: np.ndarray, chosen: np.ndarray, scale: float, height: int,
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`polygon_counts` of the polygons ``coords[starts[i]:starts[i + 1]] * scale`` for ``i`` in
    ``chosen``, concatenated in that order, and the offsets of each polygon's counts in them."""
    n = chosen.size
    offsets = np.zeros(n + 1, np.int64)
    parts = []
    for j in range(n):
        i = chosen[j]
        part = polygon_counts(coords[starts[i]:starts[i + 1]] * scale, height, width)
        offsets[j + 1] = offsets[j] + part.size
        parts.append(part)
    out = np.empty(offsets[n], np.int64)
    for j in range(n):
        out[offsets[j]:offsets[j + 1]] = parts[j]
    return out, offsets


# -- the shapes painter ----------------------------------------------------------------------------------
@numba.njit(cache=True)
def _pieces(counts: np.ndarray, height: int) -> np.ndarray:
    """The runs of ones of COCO RLE counts cut at column ends: ``(q, 3)`` rows ``(x, first y, end y)``, in
    column-major order."""
    q = 0
    pos = 0
    for r in range(counts.size):
        if r % 2 == 1 and counts[r] > 0:
            q += (pos + counts[r] - 1) // height - pos // height + 1
        pos += counts[r]
    out = np.empty((q, 3), np.int64)
    q = 0
    pos = 0
    for r in range(counts.size):
        end = pos + counts[r]
        if r % 2 == 1:
            p = pos
            while p < end:
                x = p // height
                out[q, 0], out[q, 1], out[q, 2] = x, p - x * height, min(end - x * height, height)
                q += 1
                p = min(end, (x + 1) * height)
        pos = end
    return out


@numba.njit(cache=True)
def erosion_reach(radius: int) -> np.ndarray:
    """The element of ``radius`` erosion steps alternating a 4-neighbour cross (even steps) and a 3x3 square
    (odd steps), an octagon, as its half-height at each column offset ``-radius..radius`` (index ``d`` is offset
    ``d - radius``): eroding by the steps in turn equals eroding once by this element."""
    reach = np.full(2 * radius + 1, -1, np.int64)
    reach[radius] = 0
    for step in range(radius):
        grown = np.full(2 * radius + 1, -1, np.int64)
        for d in range(2 * radius + 1):
            for e in range(max(d - 1, 0), min(d + 2, 2 * radius + 1)):
                if reach[e] >= 0:
                    if step % 2 == 1 or e == d:          # the square grows every column, the cross its own
                        grown[d] = max(grown[d], reach[e] + 1)
                    else:                                # the cross shifts a column sideways
                        grown[d] = max(grown[d], reach[e])
        reach = grown
    return reach


@numba.njit(cache=True)
def _one_piece_each(first_piece: np.ndarray, c: int, x0: int, width: int, radius: int) -> bool:
    """True when no column of the image within ``radius`` of column ``x0 + c`` holds more than one piece."""
    for x in range(max(x0 + c - radius, 0), min(x0 + c + radius + 1, width)):
        cc = x - x0
        if 0 <= cc < first_piece.size - 1 and first_piece[cc + 1] - first_piece[cc] > 1:
            return False
    return True


@numba.njit(cache=True)
def _interior_rows(pieces: np.ndarray, height: int, width: int, reach: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mask of ``pieces`` (:func:`_pieces`, not empty) eroded by the element ``reach``
    (:func:`erosion_reach`), pixels beyond the image frame counting as inside the mask, as row intervals
    ``[starts, ends)`` per column: column ``pieces[0, 0] + c`` owns intervals ``first[c]:first[c + 1]``.

    Pixel ``(x, y)`` survives when every column ``x + dx`` of the image holds rows ``y - reach, ..., y + reach``
    (that offset's reach) inside one run of the mask, a run touching the frame reaching on beyond it: so each
    column's surviving rows are the intersection, over the offsets, of the neighbouring column's runs shrunk by
    the reach."""
    radius = (reach.size - 1) // 2
    x0 = pieces[0, 0]
    n_cols = pieces[-1, 0] - x0 + 1
    n = pieces.shape[0]
    first_piece = np.zeros(n_cols + 1, np.int64)
    for q in range(n):
        first_piece[pieces[q, 0] - x0 + 1] += 1
    for c in range(n_cols):
        first_piece[c + 1] += first_piece[c]
    beyond = height + radius + 1                         # a run touching the frame extends this far past it
    starts = np.empty(reach.size * n + 1, np.int64)
    ends = np.empty(reach.size * n + 1, np.int64)
    first = np.zeros(n_cols + 1, np.int64)
    cur = np.empty((2, 2, n + 1), np.int64)          # [which buffer, start/end, interval]: no array swaps
    other = np.empty((2, n + 1), np.int64)
    total = 0
    for c in range(n_cols):
        if first_piece[c + 1] - first_piece[c] == 1 and _one_piece_each(first_piece, c, x0, width, radius):
            # the common case (a convex shape): one run per column, so the intersection is one interval
            lo, hi = -beyond, height + beyond
            for d in range(reach.size):
                x = x0 + c + d - radius
                if reach[d] < 0 or x < 0 or x >= width:
                    continue
                cc = x - x0
                if cc < 0 or cc >= n_cols or first_piece[cc + 1] == first_piece[cc]:
                    hi = lo                              # a column without the mask next to it
                    break
                q = first_piece[cc]
                lo = max(lo, (pieces[q, 1] - beyond if pieces[q, 1] == 0 else pieces[q, 1]) + reach[d])
                hi = min(hi, (pieces[q, 2] + beyond if pieces[q, 2] == height else pieces[q, 2]) - reach[d])
            if lo < hi:
                starts[total], ends[total] = lo, hi
                total += 1
            first[c + 1] = total
            continue
        k = 0
        b = 0
        for q in range(first_piece[c], first_piece[c + 1]):
            lo = pieces[q, 1] - beyond if pieces[q, 1] == 0 else pieces[q, 1]
            hi = pieces[q, 2] + beyond if pieces[q, 2] == height else pieces[q, 2]
            if hi - lo > 2 * reach[radius]:
                cur[b, 0, k], cur[b, 1, k] = lo + reach[radius], hi - reach[radius]
                k += 1
        for d in range(reach.size):
            x = x0 + c + d - radius
            if d == radius or k == 0 or reach[d] < 0 or x < 0 or x >= width:
                continue                                 # beyond the frame: all inside
            cc = x - x0
            m = 0
            if 0 <= cc < n_cols:
                for q in range(first_piece[cc], first_piece[cc + 1]):
                    lo = pieces[q, 1] - beyond if pieces[q, 1] == 0 else pieces[q, 1]
                    hi = pieces[q, 2] + beyond if pieces[q, 2] == height else pieces[q, 2]
                    if hi - lo > 2 * reach[d]:
                        other[0, m], other[1, m] = lo + reach[d], hi - reach[d]
                        m += 1
            i = j = kept = 0
            while i < k and j < m:
                lo, hi = max(cur[b, 0, i], other[0, j]), min(cur[b, 1, i], other[1, j])
                if lo < hi:
                    cur[1 - b, 0, kept], cur[1 - b, 1, kept] = lo, hi
                    kept += 1
                if cur[b, 1, i] < other[1, j]:
                    i += 1
                else:
                    j += 1
            b = 1 - b
            k = kept
        starts[total:total + k] = cur[b, 0, :k]
        ends[total:total + k] = cur[b, 1, :k]
        total += k
        first[c + 1] = total
    return starts[:total], ends[:total], first


@numba.njit(cache=True)
def _covered(pieces: np.ndarray, height: int, count: np.ndarray) -> bool:
    """True when every pixel of ``pieces`` (:func:`_pieces`) has a non-zero ``count``."""
    for q in range(pieces.shape[0]):
        column = pieces[q, 0] * height
        for p in range(column + pieces[q, 1], column + pieces[q, 2]):
            if count[p] == 0:
                return False
    return True


@numba.njit(cache=True)
def paint_shapes(coords: np.ndarray, starts: np.ndarray, height: int, width: int, outline_px: int,
                 keep_hidden: bool, count: np.ndarray, top: np.ndarray, edge: np.ndarray):
    """Rasterise and lay the polygons ``coords[starts[i]:starts[i + 1]]`` (draw order, later = nearer) from the
    nearest to the farthest on column-major arrays (index ``x * height + y``).

    ``count`` (zeros, an unsigned type holding the number of shapes) becomes the number of shapes at each
    pixel; a shape's level at a pixel is the count of nearer shapes already there. A shape with no pixel, or
    (unless ``keep_hidden``) no level-0 pixel, is skipped. ``top`` (zeros) becomes the draw index + 1 of the
    nearest shape, and ``edge`` (``(height, width)`` bool, False, row-major like the picture) True where the
    nearest shape shows its outline: its mask minus the erosion by ``outline_px`` steps (:func:`erosion_reach`).

    Returns the kept draw indices (nearest first); their amodal RLE counts, column-major pixel indices
    (ascending) and levels, each concatenated, with the offsets of each shape's part; and the depth of the
    stack (the largest count).
    """
    n = starts.size - 1
    reach = erosion_reach(outline_px)
    shape_counts = []
    shape_pieces = []
    total = 0
    for i in range(n):
        cnts = polygon_counts(coords[starts[i]:starts[i + 1]], height, width)
        pieces = _pieces(cnts, height)
        for q in range(pieces.shape[0]):
            total += pieces[q, 2] - pieces[q, 1]
        shape_counts.append(cnts)
        shape_pieces.append(pieces)
    pixels = np.empty(total, np.int64)
    levels = np.empty(total, count.dtype)
    kept = np.empty(n, np.int64)
    pixel_offsets = np.zeros(n + 1, np.int64)
    m = 0
    for i in range(n - 1, -1, -1):
        pieces = shape_pieces[i]
        if pieces.shape[0] == 0 or (not keep_hidden and _covered(pieces, height, count)):
            continue
        k = first = pixel_offsets[m]
        for q in range(pieces.shape[0]):
            column = pieces[q, 0] * height
            for p in range(column + pieces[q, 1], column + pieces[q, 2]):
                level = count[p]
                pixels[k] = p
                levels[k] = level
                count[p] = level + 1
                if level == 0:
                    top[p] = i + 1
                k += 1
        if outline_px > 0:
            # the band: each piece's rows outside the interior intervals of its column
            starts_in, ends_in, first_in = _interior_rows(pieces, height, width, reach)
            k = first
            for q in range(pieces.shape[0]):
                x, y0, y1 = pieces[q, 0], pieces[q, 1], pieces[q, 2]
                c = x - pieces[0, 0]
                y = y0
                for t in range(first_in[c], first_in[c + 1] + 1):
                    lo, hi = (max(starts_in[t], y0), min(ends_in[t], y1)) if t < first_in[c + 1] else (y1, y1)
                    if lo >= hi and t < first_in[c + 1]:
                        continue                                # an interval of another piece
                    for row in range(y, lo):
                        if levels[k + row - y0] == 0:
                            edge[row, x] = True
                    y = hi
                k += y1 - y0
        kept[m] = i
        pixel_offsets[m + 1] = k
        m += 1
    counts_offsets = np.zeros(m + 1, np.int64)
    for j in range(m):
        counts_offsets[j + 1] = counts_offsets[j] + shape_counts[kept[j]].size
    all_counts = np.empty(counts_offsets[m], np.int64)
    for j in range(m):
        all_counts[counts_offsets[j]:counts_offsets[j + 1]] = shape_counts[kept[j]]
    used = pixel_offsets[m]
    return (kept[:m], all_counts, counts_offsets, pixels[:used], levels[:used], pixel_offsets[:m + 1],
            int(count.max()) if count.size else 0)


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
        bounds = np.empty(2 * (offsets[k + 1] - offsets[k]), np.int64)   # where visible runs start and end
        n = 0
        for j in range(offsets[k], offsets[k + 1]):
            p = pixels[j]
            level = levels[j]
            for nearer in range(level):
                pairs[ids[nearer * n_pix + p], rid] = True
            ids[level * n_pix + p] = rid
            if level == 0:
                if n > 0 and bounds[n - 1] == p:       # extends the last run
                    bounds[n - 1] = p + 1
                else:
                    bounds[n] = p
                    bounds[n + 1] = p + 1
                    n += 2
        cnts = np.empty(n + 1, np.int64)           # zeros first, then ones, ...
        previous = 0
        for r in range(n):
            cnts[r] = bounds[r] - previous
            previous = bounds[r]
        cnts[n] = n_pix - previous
        if n > 0 and cnts[n] == 0:                # pycocotools ends on the last run, never on an empty one
            cnts = cnts[:n]
        visible_parts.append(cnts)
    offsets_out = np.zeros(m + 1, np.int64)
    for k in range(m):
        offsets_out[k + 1] = offsets_out[k] + visible_parts[k].size
    out = np.empty(offsets_out[m], np.int64)
    for k in range(m):
        out[offsets_out[k]:offsets_out[k + 1]] = visible_parts[k]
    return out, offsets_out
