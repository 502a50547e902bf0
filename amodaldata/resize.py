"""Scene resizing: every amodal mask resampled (nearest, at pixel centres) to a new size, the occlusion order
kept, so the layer stack of the resized scene is the resampled original one (the models' inputs, no torch)."""

from __future__ import annotations

import numpy as np

from .errors import GeometryError
from .masks import Mask
from .scene import Region, Scene


def resize_scene(scene: Scene, height: int, width: int) -> Scene:
    """The scene with every amodal mask resampled (nearest, at pixel centres) to ``height x width``.

    The occlusion order and depth ranks are kept, so the resized layer stack is the resampled original one.
    Given visible masks are not carried over: targets derive visible masks from the layer stack.
    """
    ys = np.minimum(((np.arange(height) + 0.5) * scene.height / height).astype(np.int64), scene.height - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * scene.width / width).astype(np.int64), scene.width - 1)
    if height <= scene.height and width <= scene.width:
        # downsampling: each source row/column feeds at most one target one, so invert the maps and walk the
        # masks' RLE runs (no full-size bitmap is decoded)
        from .rle import runs
        from .stack_kernels import resample_runs

        row = np.full(scene.height, -1, np.int64)
        col = np.full(scene.width, -1, np.int64)
        row[ys], col[xs] = np.arange(height), np.arange(width)
        raw = [r.amodal.to_pycocotools()["counts"] for r in scene.regions]
        starts, ends, run_offsets, bad = runs(raw, scene.height * scene.width)
        if bad >= 0:
            raise GeometryError("amodal RLE counts are not a valid mask of the image",
                                region_id=scene.regions[bad].id)
        resampled = np.zeros((len(raw), width, height), dtype=bool)
        resample_runs(starts, ends, run_offsets, scene.height, row, col, resampled)
        bitmaps = [m.T for m in resampled]                     # (height, width) views, column-major in memory
    else:
        bitmaps = [r.amodal.to_bitmap()[np.ix_(ys, xs)] for r in scene.regions]
    regions = [Region(r.id, Mask.from_bitmap(bitmap), name=r.name, category_id=r.category_id,
                      is_stuff=r.is_stuff, is_crowd=r.is_crowd, depth_rank=r.depth_rank) for r, bitmap in zip(scene.regions, bitmaps)]
    return Scene(id=scene.id, height=height, width=width, regions=regions, order=scene.order,
                 annotation_id=scene.annotation_id)
