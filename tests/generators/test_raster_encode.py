"""The generators' fast paths against the references: crop rasterisation vs pycocotools over the full image,
the label-map RLE encoder vs ``pycocotools.mask.encode``, the PNG writer vs PIL's decoder."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as cocomask

from amodaldata.masks import Mask
from generators.encode import encode_png, label_rles
from generators.raster import crop_boxes, crop_safe, rasterise
from generators.shapes import QUANTUM

# A triangle of a real generated scene on which the translated rasterisation differs from the full-image one
# (an edge whose walk hits an exact half-integer that floating point misses by an ulp, differently in each frame).
FRAGILE_TRIANGLE = np.array([[183.82421875, 182.34375], [252.09765625, 217.5078125], [187.50390625, 259.0546875]])


def _full(polygon: np.ndarray, h: int, w: int) -> np.ndarray:
    return Mask.from_polygons(polygon.ravel().tolist(), h, w).to_bitmap()


def _check_crop(polygon: np.ndarray, h: int, w: int) -> None:
    box = crop_boxes([polygon], h, w)[0]
    safe = bool(crop_safe([polygon], [box])[0])
    full = _full(polygon, h, w)
    x0, y0, x1, y1 = box
    crop = rasterise(polygon, box, safe, h, w)
    assert np.array_equal(crop, full[y0:y1, x0:x1])
    assert full.sum() == crop.sum()          # nothing of the full mask lies outside the crop


def test_fragile_triangle_is_detected_and_rasterised_exactly():
    h = w = 256
    box = crop_boxes([FRAGILE_TRIANGLE], h, w)[0]
    x0, y0, x1, y1 = box
    full = _full(FRAGILE_TRIANGLE, h, w)[y0:y1, x0:x1]
    translated = rasterise(FRAGILE_TRIANGLE, box, True, h, w)
    assert not np.array_equal(translated, full)          # the exception of raster.py's module doc is real
    assert not crop_safe([FRAGILE_TRIANGLE], [box])[0]
    assert np.array_equal(rasterise(FRAGILE_TRIANGLE, box, False, h, w), full)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_crop_rasterisation_equals_full_image(data):
    h, w = data.draw(st.integers(8, 80)), data.draw(st.integers(8, 80))
    k = data.draw(st.integers(3, 12))
    coords = data.draw(st.lists(st.integers(-40 * QUANTUM, 120 * QUANTUM), min_size=2 * k, max_size=2 * k))
    polygon = np.array(coords, dtype=np.float64).reshape(k, 2) / QUANTUM
    polygon[:, 0] *= w / 80
    polygon[:, 1] *= h / 80
    polygon = np.round(polygon * QUANTUM) / QUANTUM
    grid = np.trunc(5 * polygon + 0.5)
    if np.any(np.all(grid == np.roll(grid, -1, axis=0), axis=1)):
        return                                            # a degenerate edge (the generator never makes one)
    _check_crop(polygon, h, w)


def test_crop_rasterisation_on_many_generated_shapes():
    from generators.shapes import CLASSES, ShapesConfig, sample_shapes

    rng = np.random.default_rng(7)
    config = ShapesConfig(size=128, classes=CLASSES, per_class=(4, 4), size_jitter=0.4)
    for _ in range(15):
        for shape in sample_shapes(config, rng):
            _check_crop(shape.polygon, 128, 128)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_label_rles_equal_pycocotools(data):
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    k = data.draw(st.integers(1, 5))
    cells = data.draw(st.lists(st.integers(0, k), min_size=h * w, max_size=h * w))
    labels = np.array(cells).reshape(h, w)
    values = np.arange(0, k + 2)                       # includes a label that is absent
    got = label_rles(labels.T.ravel(), h, w, values)
    for value, counts in zip(values, got):
        ref = cocomask.encode(np.asfortranarray((labels == value).astype(np.uint8)))["counts"].decode()
        assert counts == ref
        assert Mask.from_rle({"size": [h, w], "counts": counts}, h, w) == Mask.from_bitmap(labels == value)


def test_label_rles_long_runs():
    labels = np.zeros((300, 300), dtype=np.int32)
    labels[10:290, 5:295] = 1
    labels[0, :] = 2                                    # runs of one pixel, and of 90000 - ... pixels
    got = label_rles(labels.T.ravel(), 300, 300, np.array([0, 1, 2]))
    for value, counts in zip((0, 1, 2), got):
        assert counts == cocomask.encode(np.asfortranarray((labels == value).astype(np.uint8)))["counts"].decode()


def test_png_round_trip_through_pil():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 2, (37, 29)).astype(bool), rng.integers(0, 256, (13, 17), dtype=np.uint8),
              rng.integers(0, 256, (13, 17, 3), dtype=np.uint8), np.ones((5, 8), dtype=bool)]
    for image in images:
        data = encode_png(image, 6)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.format == "PNG"
            assert np.array_equal(np.asarray(im), image)
        assert encode_png(image, 6) == data                # deterministic


def test_png_refuses_other_arrays():
    import pytest

    with pytest.raises(ValueError, match="encode_png"):
        encode_png(np.zeros((4, 4), dtype=np.float32))
