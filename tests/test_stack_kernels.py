"""The compiled loops of the layer stack, each against the numpy (or pycocotools) expression it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask

from amodaldata.rle import decode_runs
from amodaldata.stack_kernels import column_major_box, fill_ids, lay_pixels, lay_runs

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_a_corrupt_rle_read_unchecked_is_refused_by_the_stack():
    from amodaldata.errors import GeometryError
    from amodaldata.masks import Mask
    from amodaldata.order import OcclusionOrder
    from amodaldata.scene import Region, Scene

    corrupt = Mask.from_rle({"size": [10, 10], "counts": "0`0"}, 10, 10, check_counts=False)   # as a shard read
    fine = Mask.from_bitmap(np.eye(10, dtype=bool))
    scene = Scene(7, 10, 10, [Region(1, fine), Region(2, corrupt)], OcclusionOrder({(1, 2)}))
    with pytest.raises(GeometryError, match="not a valid mask") as err:
        scene.layers
    assert err.value.region_id == 2 and err.value.image_id == 7


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), height=st.integers(1, 23), width=st.integers(1, 23))
def test_lay_runs_and_lay_pixels_follow_the_running_count(random_bitmaps, seed, n, height, width):
    bitmaps = random_bitmaps(seed, n, height, width)
    flat = [b.T.ravel() for b in bitmaps]                       # column-major, as RLE runs come
    rles = [cocomask.encode(np.asfortranarray(b, dtype=np.uint8))["counts"] for b in bitmaps]
    starts, ends, run_offsets, _ = decode_runs(np.frombuffer(b"".join(rles), dtype=np.uint8),
                                               np.cumsum([len(r) for r in rles], dtype=np.int64), height * width)
    count = np.zeros(height * width, dtype=np.uint8)
    pixels, levels, area_offsets = lay_runs(starts, ends, run_offsets, count)
    expected_count = np.zeros(height * width, dtype=np.int64)
    for i, f in enumerate(flat):
        idx = np.flatnonzero(f)
        assert np.array_equal(pixels[area_offsets[i]:area_offsets[i + 1]], idx)
        assert np.array_equal(levels[area_offsets[i]:area_offsets[i + 1]], expected_count[idx])
        expected_count[idx] += 1
    assert np.array_equal(count, expected_count)

    count2 = np.zeros(height * width, dtype=np.uint16)
    assert np.array_equal(lay_pixels(pixels, area_offsets, count2), levels)
    assert np.array_equal(count2, expected_count)

    rids = np.arange(10, 10 + n, dtype=np.int64)
    depth = int(count.max())
    ids = np.zeros(depth * height * width, dtype=np.int32)
    fill_ids(ids, pixels, levels, area_offsets, rids, height * width)
    ids = ids.reshape(depth, height * width)
    for i in range(n):
        idx = pixels[area_offsets[i]:area_offsets[i + 1]]
        assert np.all(ids[levels[area_offsets[i]:area_offsets[i + 1]], idx] == rids[i])
    assert np.array_equal(np.count_nonzero(ids, axis=0), expected_count)


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 23), width=st.integers(1, 23))
def test_column_major_box_and_crop_positions(random_bitmaps, seed, height, width):
    bitmap = random_bitmaps(seed, 1, height, width)[0]
    if not bitmap.any():
        bitmap[np.random.default_rng(seed).integers(height), 0] = True
    x0, y0, x1, y1, local = column_major_box(np.flatnonzero(bitmap.T), height)
    ys, xs = np.nonzero(bitmap)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    crop = np.zeros((x1 - x0) * (y1 - y0), dtype=bool)
    crop[local] = True
    assert np.array_equal(crop.reshape(x1 - x0, y1 - y0).T, bitmap[y0:y1, x0:x1])
