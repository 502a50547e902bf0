"""Masks: exact pycocotools rasterisation of the real COCOA polygons, RLE parsing, encodings, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask

from amodaldata.errors import GeometryError
from amodaldata.masks import Mask, iou_matrix, normalise_polygons, rle_flat_indices, trace_polygons
from amodaldata.rle import run_lengths


def _release_regions(cocoa_raw):
    sizes = {im["id"]: (im["height"], im["width"]) for im in cocoa_raw["images"]}
    for ann in cocoa_raw["annotations"]:
        for region in ann["regions"]:
            yield sizes[ann["image_id"]], region


def test_every_real_polygon_rasterises_to_the_release_area(cocoa_raw):
    regions = list(_release_regions(cocoa_raw))
    assert len(regions) == 48
    for (h, w), region in regions:
        mask = Mask.from_polygons(region["segmentation"], h, w)
        assert mask.encoding == "polygon"
        assert mask.area() == region["area"], region["name"]
        assert int(mask.to_bitmap().sum()) == region["area"]


def test_real_visible_and_invisible_masks_add_up_to_the_amodal_mask(cocoa_raw):
    for (h, w), region in _release_regions(cocoa_raw):
        if "visible_mask" not in region:
            continue
        amodal = Mask.from_polygons(region["segmentation"], h, w).to_bitmap()
        visible = Mask.from_rle(region["visible_mask"], h, w)
        invisible = Mask.from_rle(region["invisible_mask"], h, w)
        assert visible.encoding == "rle"
        assert not (visible.to_bitmap() & invisible.to_bitmap()).any()
        assert np.array_equal(visible.to_bitmap() | invisible.to_bitmap(), amodal)
        assert visible.area() + invisible.area() == region["area"]


def test_flat_indices_of_real_masks_match_the_decoded_bitmap(cocoa_raw):
    for (h, w), region in _release_regions(cocoa_raw):
        for mask in [Mask.from_polygons(region["segmentation"], h, w)] + \
                [Mask.from_rle(region[k], h, w) for k in ("visible_mask", "invisible_mask") if k in region]:
            expected = np.flatnonzero(cocomask.decode(mask.to_pycocotools()))
            assert np.array_equal(np.sort(mask.flat_indices()), expected)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), data=st.data())
def test_rle_parsing_inverts_pycocotools_encoding(h, w, data):
    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    bitmap = np.array(bits, dtype=bool).reshape(h, w)
    rle = cocomask.encode(np.asfortranarray(bitmap, dtype=np.uint8))
    runs = run_lengths(rle["counts"])
    assert runs.sum() == h * w
    # runs alternate zeros and ones over the column-major pixel sequence
    values = np.repeat(np.arange(runs.size) % 2, runs).astype(bool)
    assert np.array_equal(values, bitmap.ravel(order="F"))
    assert np.array_equal(np.sort(rle_flat_indices(rle["counts"], h, w)), np.flatnonzero(bitmap))


def test_encodings_convert_both_ways():
    bitmap = np.zeros((5, 7), bool)
    bitmap[1:4, 2:6] = True
    from_bitmap = Mask.from_bitmap(bitmap)
    rle = from_bitmap.to_rle()
    assert isinstance(rle["counts"], str) and rle["size"] == [5, 7]
    from_rle = Mask.from_rle(rle, 5, 7)
    assert from_rle == from_bitmap and np.array_equal(from_rle.to_bitmap(), bitmap)
    uncompressed = {"size": [5, 7], "counts": [11, 3, 2, 3, 2, 3, 2, 3, 6]}
    assert np.array_equal(Mask.from_rle(uncompressed, 5, 7).to_bitmap(), bitmap)
    assert from_bitmap.area() == 12 and from_bitmap.bbox() == (2.0, 1.0, 4.0, 3.0)
    polygon = Mask.from_polygons([[2, 1, 6, 1, 6, 4, 2, 4]], 5, 7)
    assert polygon.bbox() == (2.0, 1.0, 4.0, 3.0)
    assert polygon.polygons == [[2.0, 1.0, 6.0, 1.0, 6.0, 4.0, 2.0, 4.0]]


def test_cocoa_flat_polygon_and_coco_list_are_the_same():
    flat = [1.5, 1.0, 8.0, 2.0, 5.0, 7.5]
    assert Mask.from_polygons(flat, 10, 10) == Mask.from_polygons([flat], 10, 10)
    assert Mask.from_segmentation(flat, 10, 10) == Mask.from_polygons(flat, 10, 10)


def test_iou_matrix():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:, :2] = True
    masks = [Mask.from_bitmap(a), Mask.from_bitmap(b)]
    iou = iou_matrix(masks, masks)
    assert iou.shape == (2, 2)
    assert np.allclose(iou, [[1, 4 / 12], [4 / 12, 1]])
    assert iou_matrix([], masks).shape == (0, 2)


@pytest.mark.parametrize(("segmentation", "fragment"), [
    ([1.0, 2.0, 3.0, 4.0], "2 point(s); at least 3"),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "odd number of coordinates (7)"),
    ([1.0, 2.0, math.nan, 4.0, 5.0, 6.0], "NaN or infinite"),
    ([1.0, 2.0, math.inf, 4.0, 5.0, 6.0], "NaN or infinite"),
    ([1.0, "2", 3.0, 4.0, 5.0, 6.0], "non-numeric"),
    ([], "non-empty list"),
    ("1 2 3", "non-empty list"),
])
def test_bad_polygons_are_refused(segmentation, fragment):
    with pytest.raises(GeometryError) as info:
        normalise_polygons(segmentation)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("rle", "fragment"), [
    ({"size": [4, 5], "counts": "PP"}, "disagrees with the image size [5, 5]"),
    ({"counts": "PP"}, "'size' and 'counts'"),
    ({"size": [5, 5], "counts": [3, 4]}, "sum to 7, not 5x5"),
    ({"size": [5, 5], "counts": 17}, "must be a string or a list"),
    ({"size": 25, "counts": "PP"}, "[height, width]"),
])
def test_bad_rles_are_refused(rle, fragment):
    with pytest.raises(GeometryError) as info:
        Mask.from_rle(rle, 5, 5)
    assert fragment in str(info.value)


def test_mask_needs_exactly_one_encoding():
    with pytest.raises(ValueError):
        Mask(2, 2)
    with pytest.raises(GeometryError):
        Mask.from_bitmap(np.zeros(4))


@pytest.mark.parametrize("counts, message", [
    ("!!!!", "outside COCO's alphabet"),
    ("abc", "truncated"),
    ("1", "decode to 1 pixels"),
    ("", "decode to 0 pixels"),
])
def test_corrupt_compressed_rle_is_refused(counts, message):
    with pytest.raises(GeometryError, match=message):
        Mask.from_rle({"size": [4, 4], "counts": counts}, 4, 4)


def test_uncompressed_rle_with_negative_runs_is_refused():
    with pytest.raises(GeometryError, match="non-negative"):
        Mask.from_rle({"size": [2, 2], "counts": [5, -1]}, 2, 2)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_traced_polygons_rasterise_to_the_mask(h, w, data):
    """Any mask, holes and diagonal touches included: the traced polygons are valid, simple, and pycocotools
    rasterises them (frPyObjects + merge) to the mask, pixel for pixel."""
    import shapely

    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    bitmap = np.array(bits, dtype=bool).reshape(h, w)
    polygons = trace_polygons(Mask.from_bitmap(bitmap))
    if not bitmap.any():
        assert polygons == []
        return
    assert all(shapely.Polygon(np.reshape(p, (-1, 2))).is_valid for p in polygons)
    back = cocomask.decode(cocomask.merge(cocomask.frPyObjects(polygons, h, w))).astype(bool)
    assert np.array_equal(back, bitmap)


def test_a_ring_with_a_hole_is_cut_into_pieces_without_holes():
    bitmap = np.ones((5, 5), dtype=bool)
    bitmap[2, 2] = False
    polygons = trace_polygons(Mask.from_bitmap(bitmap))
    assert polygons == [[0.0, 0.0, 0.0, 5.0, 2.0, 5.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0, 3.0, 2.0, 3.0, 3.0, 2.0, 3.0,
                                                                 2.0, 5.0, 5.0, 5.0, 5.0, 0.0]]
