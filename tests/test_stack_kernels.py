"""The compiled loops of the layer stack, each against the numpy (or pycocotools) expression it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask

from amodaldata.stack_kernels import column_major_box, decode_runs, fill_ids, lay_pixels, lay_runs

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bitmaps(seed: int, n: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        kind = rng.integers(3)
        if kind == 0:      # noise: many short runs
            out.append(rng.random((height, width)) < rng.uniform(0.05, 0.95))
        elif kind == 1:    # a block: long runs, wrapping columns when it spans the height
            m = np.zeros((height, width), dtype=bool)
            y0, x0 = rng.integers(height), rng.integers(width)
            m[y0:y0 + rng.integers(1, height + 1), x0:x0 + rng.integers(1, width + 1)] = True
            out.append(m)
        else:              # empty or full
            out.append(np.full((height, width), bool(rng.integers(2))))
    return out


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6), height=st.integers(1, 23), width=st.integers(1, 23))
def test_decode_runs_matches_pycocotools(seed, n, height, width):
    bitmaps = _bitmaps(seed, n, height, width)
    rles = [cocomask.encode(np.asfortranarray(b, dtype=np.uint8))["counts"] for b in bitmaps]
    starts, ends, offsets, bad = decode_runs(np.frombuffer(b"".join(rles), dtype=np.uint8),
                                             np.cumsum([len(r) for r in rles], dtype=np.int64), height * width)
    assert bad == -1 and offsets.size == n + 1
    for i, bitmap in enumerate(bitmaps):
        flat = np.zeros(height * width, dtype=bool)
        for s, e in zip(starts[offsets[i]:offsets[i + 1]], ends[offsets[i]:offsets[i + 1]]):
            assert s < e
            flat[s:e] = True
        assert np.array_equal(flat, bitmap.T.ravel())


@pytest.mark.parametrize("broken", [b"", b"0", b"0`", b"0:0", b"0\x7f", b"1c>", b"0o1", b"0<05"])
def test_decode_runs_names_the_first_invalid_string(broken):
    """Characters outside '0'..'o', a number cut off, negative runs and counts not adding up to the image are
    reported by string index, never decoded past the image (3 x 4 pixels here; "<4" is a valid 12)."""
    good = cocomask.encode(np.asfortranarray(np.eye(3, 4, dtype=np.uint8)))["counts"]
    text = good + broken + good
    ends = np.cumsum([len(good), len(broken), len(good)], dtype=np.int64)
    assert decode_runs(np.frombuffer(text, dtype=np.uint8), ends, 12)[3] == 1
    assert decode_runs(np.frombuffer(good, dtype=np.uint8), np.array([len(good)]), 12)[3] == -1


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
def test_lay_runs_and_lay_pixels_follow_the_running_count(seed, n, height, width):
    bitmaps = _bitmaps(seed, n, height, width)
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
def test_column_major_box_and_crop_positions(seed, height, width):
    bitmap = _bitmaps(seed, 1, height, width)[0]
    if not bitmap.any():
        bitmap[np.random.default_rng(seed).integers(height), 0] = True
    x0, y0, x1, y1, local = column_major_box(np.flatnonzero(bitmap.T), height)
    ys, xs = np.nonzero(bitmap)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    crop = np.zeros((x1 - x0) * (y1 - y0), dtype=bool)
    crop[local] = True
    assert np.array_equal(crop.reshape(x1 - x0, y1 - y0).T, bitmap[y0:y1, x0:x1])
