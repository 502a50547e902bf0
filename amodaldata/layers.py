"""The layer stack: the one derived raster every target, statistic and metric reads.

``ids[k, y, x]`` is the id of the (k+1)-th nearest region covering pixel (x, y), 0 where fewer than k+1
regions cover it. Slice 0 holds the visible masks; a region's visibility level L at a pixel (SLN Sec. 3,
"the number of objects to remove before the pixel becomes visible") is the slice it appears in; the number
of covering regions is the global layering map (SLN Sec. 4.3).

Built in one pass over the regions from front to back with a running per-pixel count: a region's level at
its pixels is the count of nearer regions already laid there. The per-region (pixel, level) lists are kept,
so per-region maps cost only that region's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np

from .errors import AmodalDataError, GeometryError

if TYPE_CHECKING:
    from .scene import Scene


@dataclass(frozen=True, eq=False)
class LayerStack:
    """The layer stack of one scene and the per-region visibility levels it was built from.

    Attributes:
        ids: integer array ``(K, H, W)`` of region ids (0 = none), in the narrowest type holding the largest id
            (:func:`id_dtype`); K is the deepest overlap (0 for an empty scene).
        count: unsigned int array ``(H, W)``: how many regions cover each pixel.
        front_to_back: region ids in the order the stack was built (nearest first).
        pixels: per region id, the flat indices (``y * W + x``) of its amodal pixels, in no particular order.
        levels: per region id, its visibility level at each of those pixels (the dtype of ``count``).
    """

    ids: np.ndarray
    count: np.ndarray
    front_to_back: tuple[int, ...]
    pixels: Mapping[int, np.ndarray]
    levels: dict[int, np.ndarray]
    _rates: dict[int, float] = field(default_factory=dict, init=False, repr=False)   # occlusion rates asked

    @classmethod
    def from_scene(cls, scene: "Scene") -> "LayerStack":
        """Build the stack in the scene's front-to-back order (raises DepthCycleError on a cyclic order,
        GeometryError on an RLE that is not a mask of the image)."""
        ranks = {r.id: r.depth_rank for r in scene.regions if r.depth_rank is not None}
        by_id = {r.id: r for r in scene.regions}
        try:
            order = scene.order.front_to_back([r.id for r in scene.regions], tie_break=ranks)
            return cls.from_rles([(rid, by_id[rid].amodal.to_rle()["counts"]) for rid in order],
                                 scene.height, scene.width)
        except AmodalDataError as err:
            raise err.located(image_id=scene.id, annotation_id=scene.annotation_id)

    @classmethod
    def from_bitmaps(cls, front_to_back: list[tuple[int, np.ndarray]], height: int, width: int) -> "LayerStack":
        """Build the stack from ``(region id, amodal bitmap)`` pairs listed nearest first."""
        return cls.from_pixels([(rid, np.flatnonzero(bitmap)) for rid, bitmap in front_to_back], height, width)

    @classmethod
    def from_pixels(cls, front_to_back: list[tuple[int, np.ndarray]], height: int, width: int) -> "LayerStack":
        """Build the stack from ``(region id, flat pixel indices y * W + x)`` pairs listed nearest first
        (indices unique, in any order); the work is proportional to the regions' areas."""
        from .stack_kernels import lay_pixels

        n_pix = height * width
        sizes = [idx.size for _, idx in front_to_back]
        pixels = np.concatenate([np.asarray(idx, dtype=np.int64) for _, idx in front_to_back] or
                                [np.zeros(0, dtype=np.int64)])
        if pixels.size and (pixels.min() < 0 or pixels.max() >= n_pix):
            raise ValueError(f"pixel indices must lie in [0, {n_pix}) for a {height}x{width} image")
        area_offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
        count = _counter(len(front_to_back), n_pix)
        levels = lay_pixels(pixels, area_offsets, count)
        rids = [rid for rid, _ in front_to_back]
        ids = _slices(rids, pixels, levels, area_offsets, count)
        return cls(ids=ids.reshape(-1, height, width), count=count.reshape(height, width),
                   front_to_back=tuple(rids), pixels=dict(front_to_back),
                   levels=_split(rids, levels, area_offsets))

    @classmethod
    def from_rles(cls, front_to_back: list[tuple[int, str | bytes]], height: int, width: int) -> "LayerStack":
        """Build the stack from ``(region id, COCO compressed RLE counts)`` pairs listed nearest first, straight
        from the runs: RLE runs are column-major, so the running count walks memory in runs, which is what
        makes the stack cheap (laid out as :meth:`from_laid` describes).
        """
        from .rle import runs
        from .stack_kernels import lay_runs

        n_pix = height * width
        starts, ends, run_offsets, bad = runs([c for _, c in front_to_back], n_pix)
        if bad >= 0:
            raise GeometryError(f"amodal RLE counts are not a valid mask of {height}x{width} pixels (a character "
                                "outside '0'..'o', a number cut off, a negative run or runs not adding up to the "
                                "image)", region_id=front_to_back[bad][0])
        count = _counter(len(front_to_back), n_pix)
        pixels, levels, area_offsets = lay_runs(starts, ends, run_offsets, count)
        return cls.from_laid([rid for rid, _ in front_to_back], pixels, levels, area_offsets, count, height, width)

    @classmethod
    def from_laid(cls, front_to_back: Sequence[int], pixels: np.ndarray, levels: np.ndarray, offsets: np.ndarray,
                  count: np.ndarray, height: int, width: int, ids: np.ndarray | None = None) -> "LayerStack":
        """The stack of regions already laid in column-major pixel order (``x * H + y``, as RLE runs come) by
        the running count: region ``front_to_back[i]`` (nearest first) has the pixels
        ``pixels[offsets[i]:offsets[i + 1]]`` (unique) at the levels ``levels[offsets[i]:offsets[i + 1]]``, and
        ``count`` (flat, column-major, unsigned) is the number of regions at each pixel. ``ids``, the slices flat
        (slice-major, then column-major), when the caller has filled them already; else they are filled here.

        ``ids`` and ``count`` are kept as transposed views of the column-major arrays (same values, other
        strides); ``pixels`` turn row-major on access (:class:`RowMajorPixels`).
        """
        rids = [int(rid) for rid in front_to_back]
        if ids is None:
            ids = _slices(rids, pixels, levels, offsets, count)
        return cls(ids=ids.reshape(-1, width, height).transpose(0, 2, 1), count=count.reshape(width, height).T,
                   front_to_back=tuple(rids), pixels=RowMajorPixels(_split(rids, pixels, offsets), height, width),
                   levels=_split(rids, levels, offsets))

    # -- shape ----------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """K, the number of slices."""
        return self.ids.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.count.shape  # type: ignore[return-value]

    @property
    def column_major(self) -> bool:
        """True when built from column-major (RLE-order) pixels: ``ids`` and ``count`` are then transposed views
        of column-major arrays and :meth:`native_pixels` are column-major indices."""
        return isinstance(self.pixels, RowMajorPixels)

    def native_pixels(self, rid: int) -> np.ndarray:
        """The region's flat pixel indices in the stack's own layout (see :attr:`column_major`): scatters into
        arrays of that layout walk memory in order."""
        return self.pixels.column_major[rid] if isinstance(self.pixels, RowMajorPixels) else self.pixels[rid]

    def planes(self, layers: int, value_of: Mapping[int, int] | None = None, dtype: type = np.int32
               ) -> np.ndarray:
        """``(layers, H, W)``: at slice k, ``value_of[rid]`` of the (k+1)-th nearest region (its id, as int32 or
        int64, when ``value_of`` is None; regions missing from it count as 0), zero-padded below the stack's
        depth."""
        h, w = self.shape
        native = self.ids.transpose(0, 2, 1) if self.column_major else self.ids      # contiguous
        k = min(layers, self.depth)
        ids = np.zeros((layers, *native.shape[1:]), dtype=np.result_type(self.ids.dtype, np.int32))
        ids[:k] = native[:k]
        if value_of is None:
            out = ids
        else:
            top = max(self.front_to_back, default=0)
            if top < 2**20:                      # a lookup table indexed by region id
                table = np.zeros(top + 1, dtype=dtype)
                for rid, value in value_of.items():
                    if 0 < rid <= top:
                        table[rid] = value
                out = np.take(table, ids)
            else:                                # ids too large for a table: map the distinct ones
                distinct, inverse = np.unique(ids, return_inverse=True)
                out = np.asarray([value_of.get(int(r), 0) if r else 0 for r in distinct], dtype=dtype)[inverse]
                out = out.reshape(ids.shape)
        return out.transpose(0, 2, 1) if self.column_major else out

    def padded(self, layers: int) -> np.ndarray:
        """The first ``layers`` slices, zero-padded when the stack is shallower: ``(layers, H, W)``."""
        return self.planes(layers)

    # -- per-region views -----------------------------------------------------------------------------
    def _dense(self, rid: int, values: np.ndarray, fill, dtype) -> np.ndarray:
        out = np.full(self.count.size, fill, dtype=dtype)
        out[self.pixels[rid]] = values
        return out.reshape(self.shape)

    def amodal(self, rid: int) -> np.ndarray:
        """Bool ``(H, W)``: the region's amodal mask."""
        return self._dense(rid, True, False, bool)

    def visible(self, rid: int) -> np.ndarray:
        """Bool ``(H, W)``: where the region is nearest (level 0)."""
        return self._dense(rid, self.levels[rid] == 0, False, bool)

    def invisible(self, rid: int) -> np.ndarray:
        """Bool ``(H, W)``: the region's hidden part (level > 0)."""
        return self._dense(rid, self.levels[rid] > 0, False, bool)

    def level_map(self, rid: int, outside: int = -1) -> np.ndarray:
        """Int ``(H, W)``: the region's visibility level L (SLN Sec. 3) on its amodal mask, ``outside`` elsewhere."""
        return self._dense(rid, self.levels[rid], outside, np.int32)

    def area(self, rid: int) -> int:
        """Amodal pixel count."""
        return int(self.levels[rid].size)

    def visible_area(self, rid: int) -> int:
        return int(np.count_nonzero(self.levels[rid] == 0))

    def occlusion_rate(self, rid: int) -> float:
        """Hidden fraction of the amodal mask, |invisible| / |amodal| (COCOA ``occlude_rate``); 0 for an empty mask."""
        rate = self._rates.get(rid)
        if rate is None:
            area = self.area(rid)
            rate = self._rates[rid] = 0.0 if area == 0 else float(np.count_nonzero(self.levels[rid])) / area
        return rate

    def max_level(self, rid: int) -> int:
        """The deepest visibility level of the region (-1 for an empty mask)."""
        lv = self.levels[rid]
        return int(lv.max()) if lv.size else -1


class RowMajorPixels(Mapping[int, np.ndarray]):
    """Per region, row-major flat indices ``y * W + x``, converted from column-major ones (``x * H + y``) on
    first access and cached: consumers that never ask (occlusion rates, RLE runs) never pay for it."""

    def __init__(self, column_major: dict[int, np.ndarray], height: int, width: int) -> None:
        self.column_major = column_major
        self._height, self._width = height, width
        self._row_major: dict[int, np.ndarray] = {}

    def __getitem__(self, rid: int) -> np.ndarray:
        out = self._row_major.get(rid)
        if out is None:
            x, y = np.divmod(self.column_major[rid], self._height)
            out = self._row_major[rid] = y * self._width + x
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.column_major)

    def __len__(self) -> int:
        return len(self.column_major)


def id_dtype(max_id: int) -> type:
    """The narrowest integer type that holds region ids up to ``max_id``: the stack's memory (and the page
    faults of allocating it) shrinks with it."""
    for dtype in (np.uint8, np.uint16, np.int32):
        if max_id <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _counter(n_regions: int, n_pix: int) -> np.ndarray:
    """Zeros, one per pixel, in the narrowest unsigned type that cannot overflow when ``n_regions`` regions
    are laid: less memory to walk."""
    return np.zeros(n_pix, dtype=np.uint8 if n_regions < 2**8 else np.uint16 if n_regions < 2**16 else np.int32)


def _slices(rids: list[int], pixels: np.ndarray, levels: np.ndarray, area_offsets: np.ndarray,
            count: np.ndarray) -> np.ndarray:
    """The stack's slices, flat (K * n_pix): each region's id at its pixels in the slice of its level."""
    from .stack_kernels import fill_ids

    depth = int(count.max()) if count.size else 0
    ids = np.zeros(depth * count.size, dtype=id_dtype(max(rids, default=0)))
    fill_ids(ids, pixels, levels, area_offsets, np.asarray(rids, dtype=np.int64), count.size)
    return ids


def _split(rids: list[int], values: np.ndarray, offsets: np.ndarray) -> dict[int, np.ndarray]:
    """Per region id, its slice of the concatenated ``values``."""
    return {rid: values[offsets[i]:offsets[i + 1]] for i, rid in enumerate(rids)}
