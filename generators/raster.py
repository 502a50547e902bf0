"""Polygons -> exactly pycocotools' pixels, rasterised in each polygon's bounding box instead of the whole image.

``Mask.from_polygons`` rasterises with pycocotools' ``rleFrPoly`` over the full image; decoding that costs a
full-size bitmap per shape. ``rleFrPoly`` is translation-invariant for integer shifts, with one exception,
so a polygon can be rasterised in a crop and the pixels are those of the full image:

1. vertices go to a 1/5 px grid, ``(int)(5 x + 0.5)``: exact for coordinates on the 1/QUANTUM grid, and
   shifted exactly when the crop origin is positive (when it is 0 the inputs are the same);
2. each edge is walked on that grid along its major axis, the minor coordinate being
   ``(int)(a + s * t + 0.5)`` with ``s = minor / major``; the result moves with the shift of ``a`` unless
   ``s * t`` is exactly a half-integer whose floating value errs, and whether that error survives the
   addition depends on the magnitude of ``a``: the exception;
3. the grid crossings of pixel columns and the clipping at the frame are shift-invariant.

:func:`crop_safe` evaluates step 2 at exactly those critical points (``major / gcd(major, minor)`` even, not
a power of two, ``t`` an odd multiple of half of it) in both frames, with the same IEEE double operations as
the C code; a polygon with any disagreement is rasterised over the full image instead (rare).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as cocomask


def crop_boxes(polygons: Sequence[np.ndarray], height: int, width: int) -> list[list[int]]:
    """Per polygon, the crop ``[x0, y0, x1, y1]`` (clipped to the image) that holds every pixel pycocotools
    can give it: its coordinate range widened by one pixel before and two after."""
    if not polygons:
        return []
    pts = np.concatenate(polygons)
    starts = np.cumsum([0] + [len(p) for p in polygons[:-1]])
    lo, hi = np.minimum.reduceat(pts, starts), np.maximum.reduceat(pts, starts)
    boxes = np.concatenate([np.floor(lo) - 1, np.ceil(hi) + 2], axis=1).astype(np.int64)
    np.clip(boxes, 0, [width, height, width, height], out=boxes)
    return boxes.tolist()


def crop_safe(polygons: Sequence[np.ndarray], boxes: Sequence[Sequence[int]]) -> np.ndarray:
    """Bool per polygon: True when rasterising it in its crop gives exactly the full-image pixels (module doc)."""
    n = len(polygons)
    if n == 0:
        return np.zeros(0, dtype=bool)
    boxes = np.asarray(boxes, dtype=np.int64)
    sizes = np.array([len(p) for p in polygons])
    pts = np.concatenate(polygons)
    owner = np.repeat(np.arange(n), sizes)
    grid = np.trunc(5.0 * pts + 0.5).astype(np.int64)            # (int)(scale * x + .5)
    nxt = np.arange(pts.shape[0]) + 1
    ends = np.cumsum(sizes)
    nxt[ends - 1] = ends - sizes                                   # the closing edge
    xs, ys = grid[:, 0], grid[:, 1]
    xe, ye = xs[nxt], ys[nxt]
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    x_major = dx >= dy
    flip = (x_major & (xs > xe)) | (~x_major & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    major = np.where(x_major, dx, dy)
    minor = np.where(x_major, ye - ys, xe - xs)
    start = np.where(x_major, ys, xs)                               # a: the minor coordinate at t = 0
    shift = 5 * np.where(x_major, boxes[owner, 1], boxes[owner, 0])
    g = np.gcd(major, minor)
    b = np.where(g > 0, major // np.maximum(g, 1), 0)
    risky = (b % 2 == 0) & (b > 0) & ((b & (b - 1)) != 0)
    if not risky.any():
        return np.ones(n, dtype=bool)
    edge = np.flatnonzero(risky)
    reps = g[edge]
    e = np.repeat(edge, reps)
    j = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    t = ((2 * j + 1) * (b[e] // 2)).astype(np.float64)
    q = (minor[e].astype(np.float64) / major[e].astype(np.float64)) * t   # s * t, as in C
    full = np.trunc((start[e].astype(np.float64) + q) + 0.5)
    crop = np.trunc(((start[e] - shift[e]).astype(np.float64) + q) + 0.5) + shift[e]
    safe = np.ones(n, dtype=bool)
    safe[owner[e[full != crop]]] = False
    return safe


def rasterise(polygon: np.ndarray, box: Sequence[int], safe: bool, height: int, width: int) -> np.ndarray:
    """The polygon's pixels (pycocotools semantics) inside ``box = (x0, y0, x1, y1)``: bool ``(y1-y0, x1-x0)``.

    ``safe`` (from :func:`crop_safe`): rasterise in the crop; else over the full image, then cut the crop.
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return np.zeros((max(0, y1 - y0), max(0, x1 - x0)), dtype=bool)
    if safe:
        rle = cocomask.frPyObjects([(polygon - (x0, y0)).ravel().tolist()], y1 - y0, x1 - x0)
        return np.ascontiguousarray(cocomask.decode(rle)[:, :, 0], dtype=bool)
    rle = cocomask.frPyObjects([polygon.ravel().tolist()], height, width)
    return np.ascontiguousarray(cocomask.decode(rle)[y0:y1, x0:x1, 0], dtype=bool)

