"""amodaldata.resize: scenes resampled at pixel centres, down over the RLE runs and up over bitmaps."""

from __future__ import annotations

import numpy as np
import pytest

from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.resize import resize_scene
from amodaldata.scene import Region, Scene


@pytest.mark.parametrize("size", [(37, 50), (13, 7), (60, 90), (1, 1), (30, 200)])
def test_resize_samples_every_mask_at_pixel_centres(size):
    """Down (kernel over the RLE runs) and up (decoded bitmaps): each mask is the original read at the target
    pixels' centres; masks with runs that wrap columns, full and empty ones included."""
    rng = np.random.default_rng(sum(size))
    height, width = 60, 90
    bitmaps = [rng.random((height, width)) < 0.3, np.ones((height, width), bool), np.zeros((height, width), bool)]
    block = np.zeros((height, width), bool)
    block[5:, 10:40] = True
    bitmaps.append(block)
    regions = [Region(i + 1, Mask.from_rle(Mask.from_bitmap(b).to_rle(), height, width), depth_rank=i + 1)
               for i, b in enumerate(bitmaps)]
    scene = Scene(1, height, width, regions, OcclusionOrder.from_ranks({r.id: r.depth_rank for r in regions}))
    h, w = size
    ys = np.minimum(((np.arange(h) + 0.5) * height / h).astype(np.int64), height - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * width / w).astype(np.int64), width - 1)
    resized = resize_scene(scene, h, w)
    assert resized.order.edges == scene.order.edges and resized.order.edges
    for bitmap, region in zip(bitmaps, resized.regions):
        assert np.array_equal(region.amodal.to_bitmap(), bitmap[np.ix_(ys, xs)])
