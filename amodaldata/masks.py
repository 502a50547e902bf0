"""Binary masks kept in the encoding they arrived in (polygons, COCO RLE or a bitmap), converted on demand.

Rasterisation follows pycocotools exactly (``frPyObjects`` then ``merge`` for polygons, as COCO's
``annToRLE`` does), so a COCOA polygon rasterises to the release's ``area`` and ``visible_mask`` pixels.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import numpy as np
from pycocotools import mask as cocomask

from .errors import GeometryError

Encoding = Literal["polygon", "rle", "bitmap"]
Polygons = list[list[float]]


def normalise_polygons(segmentation: Any) -> Polygons:
    """Return a list of flat ``[x1, y1, x2, y2, ...]`` polygons from COCOA's single flat polygon or COCO's list.

    Raises :class:`GeometryError` on non-numeric or non-finite coordinates, an odd number of coordinates or
    a polygon with fewer than 3 points.
    """
    if not isinstance(segmentation, (list, tuple)) or len(segmentation) == 0:
        raise GeometryError(f"polygon segmentation must be a non-empty list, got {type(segmentation).__name__}")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in segmentation):
        polys = [list(segmentation)]
    else:
        polys = [list(p) for p in segmentation]
    out: Polygons = []
    for i, poly in enumerate(polys):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise GeometryError(f"polygon {i} has a non-numeric coordinate")
        if len(poly) % 2:
            raise GeometryError(f"polygon {i} has an odd number of coordinates ({len(poly)})")
        if len(poly) < 6:
            raise GeometryError(f"polygon {i} has {len(poly) // 2} point(s); at least 3 are needed")
        if not all(math.isfinite(v) for v in poly):
            raise GeometryError(f"polygon {i} has a NaN or infinite coordinate")
        out.append([float(v) for v in poly])
    return out


def _compressed(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _for_pycocotools(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


class Mask:
    """An image-sized binary mask of height ``h`` and width ``w``.

    Exactly one encoding is given at construction; the others are derived lazily and cached:
    ``to_rle()`` (COCO compressed RLE, ``counts`` as str), ``to_bitmap()`` (bool array ``(h, w)``).
    """

    __slots__ = ("height", "width", "_polygons", "_rle", "_bitmap", "_area")

    def __init__(self, height: int, width: int, *, polygons: Polygons | None = None,
                 rle: dict | None = None, bitmap: np.ndarray | None = None) -> None:
        if sum(x is not None for x in (polygons, rle, bitmap)) != 1:
            raise ValueError("give exactly one of polygons, rle, bitmap")
        self.height, self.width = int(height), int(width)
        self._polygons = polygons
        self._rle = rle
        self._bitmap = bitmap
        self._area: int | None = None

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_polygons(cls, segmentation: Any, height: int, width: int) -> "Mask":
        """Polygons in COCO (list of flat lists) or COCOA (one flat list) layout, validated."""
        return cls(height, width, polygons=normalise_polygons(segmentation))

    @classmethod
    def from_rle(cls, rle: Any, height: int, width: int) -> "Mask":
        """A COCO RLE, compressed (``counts`` str/bytes) or uncompressed (``counts`` list); size must match."""
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise GeometryError("RLE must be an object with 'size' and 'counts'")
        size = rle["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise GeometryError(f"RLE 'size' must be [height, width], got {size!r}")
        if [int(size[0]), int(size[1])] != [int(height), int(width)]:
            raise GeometryError(f"RLE size {list(size)} disagrees with the image size [{height}, {width}]")
        counts = rle["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise GeometryError(f"uncompressed RLE counts sum to {sum(counts)}, not {height}x{width}")
            rle = cocomask.frPyObjects({"size": [int(height), int(width)], "counts": counts}, height, width)
        elif not isinstance(counts, (str, bytes)):
            raise GeometryError(f"RLE 'counts' must be a string or a list, got {type(counts).__name__}")
        out = _compressed(rle)
        try:
            decoded_area = int(cocomask.area(_for_pycocotools(out)))
        except Exception as exc:  # pycocotools raises plain errors on corrupt strings
            raise GeometryError(f"RLE counts cannot be decoded: {exc}") from None
        mask = cls(height, width, rle=out)
        mask._area = decoded_area
        return mask

    @classmethod
    def from_bitmap(cls, bitmap: np.ndarray) -> "Mask":
        """A 2-D array; non-zero pixels are in the mask."""
        arr = np.asarray(bitmap)
        if arr.ndim != 2:
            raise GeometryError(f"a bitmap mask must be 2-D, got shape {arr.shape}")
        return cls(arr.shape[0], arr.shape[1], bitmap=arr.astype(bool, copy=False))

    @classmethod
    def from_segmentation(cls, segmentation: Any, height: int, width: int) -> "Mask":
        """Polygons or RLE, told apart the way COCO's loaders do (a dict is RLE)."""
        if isinstance(segmentation, dict):
            return cls.from_rle(segmentation, height, width)
        return cls.from_polygons(segmentation, height, width)

    # -- encodings ------------------------------------------------------------------------------------
    @property
    def encoding(self) -> Encoding:
        if self._polygons is not None:
            return "polygon"
        return "rle" if self._rle is not None else "bitmap"

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def polygons(self) -> Polygons | None:
        """The polygons this mask was built from, or None when it arrived as RLE or bitmap."""
        return self._polygons

    def to_rle(self) -> dict:
        """COCO compressed RLE ``{"size": [h, w], "counts": str}``."""
        if self._rle is None:
            if self._polygons is not None:
                rles = cocomask.frPyObjects(self._polygons, self.height, self.width)
                self._rle = _compressed(cocomask.merge(rles))
            else:
                self._rle = _compressed(cocomask.encode(np.asfortranarray(self._bitmap, dtype=np.uint8)))
        return self._rle

    def to_bitmap(self) -> np.ndarray:
        """Bool array ``(h, w)``; cached, do not modify in place."""
        if self._bitmap is None:
            self._bitmap = cocomask.decode(_for_pycocotools(self.to_rle())).astype(bool)
        return self._bitmap

    def to_pycocotools(self) -> dict:
        """The RLE with bytes ``counts``, as pycocotools' C functions want it."""
        return _for_pycocotools(self.to_rle())

    # -- measures -------------------------------------------------------------------------------------
    def area(self) -> int:
        """Pixel count, with pycocotools semantics."""
        if self._area is None:
            if self._bitmap is not None:
                self._area = int(np.count_nonzero(self._bitmap))
            else:
                self._area = int(cocomask.area(self.to_pycocotools()))
        return self._area

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)``: from the polygon coordinates when polygons, else from the pixels (pycocotools)."""
        if self._polygons is not None:
            xs = np.concatenate([np.asarray(p[0::2]) for p in self._polygons])
            ys = np.concatenate([np.asarray(p[1::2]) for p in self._polygons])
            x0, y0 = float(xs.min()), float(ys.min())
            return (x0, y0, float(xs.max()) - x0, float(ys.max()) - y0)
        x, y, w, h = cocomask.toBbox(self.to_pycocotools())
        return (float(x), float(y), float(w), float(h))

    def __eq__(self, other: object) -> bool:
        """Pixel equality (encodings may differ)."""
        if not isinstance(other, Mask):
            return NotImplemented
        return self.size == other.size and self.to_rle()["counts"] == other.to_rle()["counts"]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Mask({self.height}x{self.width}, {self.encoding})"


def iou_matrix(a: Sequence[Mask], b: Sequence[Mask]) -> np.ndarray:
    """IoU of every mask of ``a`` against every mask of ``b`` (pycocotools ``iou``), shape ``(len(a), len(b))``."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(cocomask.iou([m.to_pycocotools() for m in a], [m.to_pycocotools() for m in b],
                                   [0] * len(b)), dtype=float).reshape(len(a), len(b))
