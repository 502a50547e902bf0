"""Binary masks kept in the encoding they arrived in (polygons, COCO RLE or a bitmap), converted on demand.

Rasterisation follows pycocotools exactly (``frPyObjects`` then ``merge`` for polygons, as COCO's
``annToRLE`` does), so a COCOA polygon rasterises to the release's ``area`` and ``visible_mask`` pixels.
RLE text is read and written by :mod:`amodaldata.rle` (imported on first use, so polygons never pay for numba).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from pycocotools import mask as cocomask

from .errors import GeometryError

Encoding = Literal["polygon", "rle", "bitmap"]
Polygons = list[list[float]]


def _coordinates(values: Any) -> np.ndarray | None:
    """``values`` as a float64 vector when it is a flat list of ints and floats (no bools, strings or None),
    else None. The type check runs at C speed (``map(type, ...)``), the conversion in numpy."""
    if not isinstance(values, (list, tuple)) or not set(map(type, values)) <= {int, float}:
        return None
    return np.asarray(values, dtype=np.float64)


def normalise_polygons(segmentation: Any) -> Polygons:
    """Return a list of flat ``[x1, y1, x2, y2, ...]`` polygons from COCOA's single flat polygon or COCO's list.

    Raises :class:`GeometryError` on non-numeric or non-finite coordinates, an odd number of coordinates or
    a polygon with fewer than 3 points.
    """
    if not isinstance(segmentation, (list, tuple)) or len(segmentation) == 0:
        raise GeometryError(f"polygon segmentation must be a non-empty list, got {type(segmentation).__name__}")
    if not isinstance(segmentation[0], (list, tuple)):
        flat = _coordinates(segmentation)
        if flat is None:
            raise GeometryError("polygon 0 has a non-numeric coordinate")
        coords = [flat]
    elif all(isinstance(p, (list, tuple)) for p in segmentation):
        coords = [_coordinates(p) for p in segmentation]
    else:
        raise GeometryError("polygon has a non-numeric coordinate (expected numbers or lists of numbers)")
    out: Polygons = []
    for i, arr in enumerate(coords):
        if arr is None:
            raise GeometryError(f"polygon {i} has a non-numeric coordinate")
        if arr.size % 2:
            raise GeometryError(f"polygon {i} has an odd number of coordinates ({arr.size})")
        if arr.size < 6:
            raise GeometryError(f"polygon {i} has {arr.size // 2} point(s); at least 3 are needed")
        if not np.isfinite(arr).all():
            raise GeometryError(f"polygon {i} has a NaN or infinite coordinate")
        out.append(arr.tolist())
    return out


def _compressed(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _for_pycocotools(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def column_runs(counts: str | bytes, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of a compressed COCO RLE as column pieces: per piece its column x and its rows ``[y0, y1)``,
    by column then row. The runs are column-major and may wrap over several columns; each is split at the
    column ends."""
    from . import rle

    bounds = np.cumsum(rle.run_lengths(counts))
    start, end = bounds[0::2][:bounds.size // 2], bounds[1::2]      # runs of ones: [start, end)
    _, col, y0, y1 = rle.split_at_columns(start, end, height)
    return col, y0, y1


def rle_flat_indices(counts: str | bytes, height: int, width: int) -> np.ndarray:
    """Row-major flat indices ``y * width + x`` of the pixels of a compressed COCO RLE, without decoding a bitmap.

    The runs are column-major, so the indices come column by column (sorted by x, then y): cost ~ the mask's
    area plus its runs, not the image size.
    """
    col, y0, y1 = column_runs(counts, height)
    length = y1 - y0
    offset = np.cumsum(length) - length
    return np.repeat(y0 * width + col - width * offset, length) + width * np.arange(int(length.sum()))


def trace_polygons(mask: "Mask") -> Polygons:
    """Polygons whose COCO rasterisation (pycocotools ``frPyObjects`` + ``merge``) is ``mask``, pixel for pixel.

    The outline is traced along the pixel edges (corners at integer coordinates, pixel (x, y) spanning
    [x, x + 1] x [y, y + 1]): shapely unions the mask's column runs as boxes and drops the collinear corners.
    pycocotools fills such rectilinear rings exactly. COCO polygons cannot hold holes (a polygon list is a
    union), so a part with holes is cut by vertical lines at each hole's left edge into pieces without any;
    the pieces are valid, simple polygons, listed by their lowest x then y. An empty mask has no polygon.
    """
    import shapely

    col, y0, y1 = column_runs(mask.to_rle()["counts"], mask.height)
    if col.size == 0:
        return []
    region = shapely.simplify(shapely.union_all(shapely.box(col, y0, col + 1, y1)), 0)
    pieces = []
    for part in shapely.get_parts(region):
        if not part.interiors:
            pieces.append(part)
            continue
        x_min, y_min, x_max, y_max = part.bounds
        cuts = sorted({x_min, x_max} | {hole.bounds[0] for hole in part.interiors})
        strips = shapely.box(cuts[:-1], y_min, cuts[1:], y_max)
        for piece in shapely.get_parts(shapely.intersection(part, strips)):
            pieces.extend(p for p in shapely.get_parts(shapely.simplify(piece, 0)) if p.geom_type == "Polygon"
                          and p.area > 0)
    rings = [np.asarray(p.exterior.coords)[:-1] for p in pieces]
    rings.sort(key=lambda ring: (ring[:, 0].min(), ring[:, 1].min()))
    return [ring.ravel().tolist() for ring in rings]


class Mask:
    """An image-sized binary mask of height ``h`` and width ``w``.

    Exactly one encoding is given at construction; the others are derived lazily and cached:
    ``to_rle()`` (COCO compressed RLE, ``counts`` as str), ``to_bitmap()`` (bool array ``(h, w)``).
    """

    __slots__ = ("height", "width", "_polygons", "_rle", "_bitmap", "_area")

    def __init__(self, height: int, width: int, *, polygons: Polygons | None = None,
                 rle: dict | None = None, bitmap: np.ndarray | None = None) -> None:
        """Give exactly one of ``polygons``, ``rle``, ``bitmap``; or ``polygons`` with the ``rle`` they are known
        to rasterise to (e.g. both read back from a shard), which spares the rasterisation."""
        if bitmap is not None and (polygons is not None or rle is not None) or \
                polygons is None and rle is None and bitmap is None:
            raise ValueError("give exactly one of polygons, rle, bitmap (or polygons with their rle)")
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
    def from_rle(cls, rle: Any, height: int, width: int, *, check_counts: bool = True) -> "Mask":
        """A COCO RLE, compressed (``counts`` str/bytes) or uncompressed (``counts`` list); size must match.

        Compressed counts are decoded once to check that they are well formed and cover exactly the image
        (``check_counts=False`` skips that for a field that is only carried along).
        """
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise GeometryError("RLE must be an object with 'size' and 'counts'")
        size = rle["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
            raise GeometryError(f"RLE 'size' must be [height, width] integers, got {size!r}")
        if [size[0], size[1]] != [int(height), int(width)]:
            raise GeometryError(f"RLE size {list(size)} disagrees with the image size [{height}, {width}]")
        counts = rle["counts"]
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                raise GeometryError("uncompressed RLE counts must be non-negative integers")
            if sum(counts) != height * width:
                raise GeometryError(f"uncompressed RLE counts sum to {sum(counts)}, not {height}x{width}")
            from . import rle as codec

            rle = {"size": [int(height), int(width)], "counts": codec.strings(np.asarray(counts, dtype=np.int64),
                                                                               np.array([0, len(counts)]))[0]}
        elif not isinstance(counts, (str, bytes)):
            raise GeometryError(f"RLE 'counts' must be a string or a list, got {type(counts).__name__}")
        out = _compressed(rle)
        if not check_counts:
            return cls(height, width, rle=out)
        raw = out["counts"].encode("ascii", "replace") if isinstance(out["counts"], str) else out["counts"]
        chars = np.frombuffer(raw, dtype=np.uint8)
        if chars.size and (chars.min() < 48 or chars.max() > 111):
            raise GeometryError("RLE counts string has characters outside COCO's alphabet ('0' to 'o')")
        if chars.size and (int(chars[-1]) - 48) & 0x20:
            raise GeometryError("RLE counts string ends in the middle of a number (truncated)")
        from . import rle as codec

        runs = codec.run_lengths(raw)
        if (runs < 0).any() or int(runs.sum()) != height * width:
            raise GeometryError(f"RLE counts decode to {int(runs.sum())} pixels with "
                                f"{int((runs < 0).sum())} negative run(s), not {height}x{width}")
        decoded_area = int(runs[1::2].sum())
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
                from . import rle

                self._rle = rle.encode(self._bitmap)
        return self._rle

    def compact(self) -> "Mask":
        """This mask held as RLE only (polygons kept where given): what to keep of many masks at once."""
        out = Mask(self.height, self.width, polygons=self._polygons, rle=self.to_rle())
        out._area = self._area
        return out

    def to_bitmap(self) -> np.ndarray:
        """Bool array ``(h, w)``; cached, do not modify in place."""
        if self._bitmap is None:
            from . import rle

            try:
                self._bitmap = rle.decode(self.to_rle())
            except ValueError as err:
                raise GeometryError(str(err)) from None
        return self._bitmap

    def flat_indices(self) -> np.ndarray:
        """Int64 row-major flat indices ``y * W + x`` of the mask's pixels, in no particular order; from the
        cached bitmap when there is one, else straight from the RLE runs (no bitmap is decoded)."""
        if self._bitmap is not None:
            return np.flatnonzero(self._bitmap)
        return rle_flat_indices(self.to_rle()["counts"], self.height, self.width)

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
