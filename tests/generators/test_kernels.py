"""The generators' compiled kernels against the references: the polygon rasteriser against pycocotools'
``frPyObjects`` count for count, the painter's outline band
against scipy's erosion. The painted scenes as a whole are checked in ``test_shapes.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask
from scipy.ndimage import binary_dilation, binary_erosion, generate_binary_structure

from amodaldata.rle import run_lengths, strings
from generators.kernels import paint_shapes, polygon_counts, polygons_counts
from generators.shapes import QUANTUM

# A triangle of a real generated scene with an edge whose walk hits an exact half-integer that floating point
# misses by an ulp (rasterising it translated gives other pixels): exactness needs the same double operations.
FRAGILE_TRIANGLE = np.array([[183.82421875, 182.34375], [252.09765625, 217.5078125], [187.50390625, 259.0546875]])


def _reference(polygon: np.ndarray, height: int, width: int) -> str:
    return cocomask.frPyObjects([polygon.ravel().tolist()], height, width)[0]["counts"].decode("ascii")


def _check(polygon: np.ndarray, height: int, width: int) -> None:
    reference = _reference(polygon, height, width)
    counts = polygon_counts(np.ascontiguousarray(polygon, dtype=np.float64), height, width)
    assert counts.tolist() == run_lengths(reference).tolist()
    assert strings(counts, np.array([0, counts.size])) == [reference]


def _random_polygon(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    k = int(rng.integers(30, 200) if kind == "many" else rng.integers(3, 9))
    span = np.array([width, height], dtype=np.float64)
    if kind == "tiny":
        polygon = rng.uniform(0, 1.5, (k, 2)) + rng.uniform(-1, 1, 2) * span
    elif kind == "off":                          # wholly beyond one side of the image
        polygon = rng.uniform(0, 1, (k, 2)) * span * 0.5 + rng.choice([-1.0, 1.6], 2) * span
    else:                                        # around the image, partly off it
        polygon = rng.uniform(-0.3, 1.3, (k, 2)) * span
    if kind in ("quantised", "repeated", "many"):
        polygon = np.round(polygon * QUANTUM) / QUANTUM
    if kind == "grid":                           # on pycocotools' own 1/5 px grid
        polygon = np.round(polygon * 5) / 5
    if kind == "repeated":                       # coincident consecutive vertices
        j = int(rng.integers(0, k))
        polygon = np.insert(polygon, j, polygon[j], axis=0)
    return polygon


@pytest.mark.parametrize("kind", ["unquantised", "quantised", "grid", "tiny", "off", "repeated", "many"])
def test_polygon_counts_equal_pycocotools(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    for _ in range(1500):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        _check(_random_polygon(rng, kind, height, width), height, width)


def test_fragile_triangle():
    _check(FRAGILE_TRIANGLE, 256, 256)
    _check(FRAGILE_TRIANGLE - 100, 256, 256)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_polygon_counts_equal_pycocotools_generated(data):
    height, width = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 70))
    k = data.draw(st.integers(3, 10))
    coords = data.draw(st.lists(st.integers(-30 * QUANTUM, 100 * QUANTUM), min_size=2 * k, max_size=2 * k))
    _check(np.array(coords, dtype=np.float64).reshape(k, 2) / QUANTUM, height, width)


def test_polygons_counts_concatenates_the_chosen_scaled_polygons():
    rng = np.random.default_rng(1)
    polygons = [_random_polygon(rng, "quantised", 80, 60) for _ in range(6)]
    starts = np.cumsum([0] + [len(p) for p in polygons])
    chosen = np.array([4, 0, 5, 2])
    counts, offsets = polygons_counts(np.concatenate(polygons), starts, chosen, 0.35, 40, 30)
    for i, lo, hi in zip(chosen, offsets[:-1], offsets[1:]):
        assert counts[lo:hi].tolist() == run_lengths(_reference(polygons[i] * 0.35, 40, 30)).tolist()


def _octagon(radius: int) -> np.ndarray:
    """The structuring element of ``radius`` erosion steps alternating a cross and a 3x3 square, built by
    dilating a point step by step (the Minkowski sum of the steps)."""
    element = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=bool)
    element[radius, radius] = True
    for step in range(radius):
        element = binary_dilation(element, structure=generate_binary_structure(2, 1 if step % 2 == 0 else 2))
    return element


@pytest.mark.parametrize("radius", [1, 2, 3, 5])
def test_painted_outline_is_the_mask_minus_its_erosion(radius):
    """One shape alone is nearest everywhere on its mask, so ``edge`` is its whole outline band: the mask minus
    its erosion by the octagon, pixels beyond the frame counting as inside (scipy's ``border_value=1``)."""
    rng = np.random.default_rng(radius)
    for kind in ["unquantised", "quantised", "many", "tiny", "off"] * 40:
        height, width = (int(v) for v in rng.integers(5, 70, 2))
        polygon = _random_polygon(rng, kind, height, width)
        mask = cocomask.decode(cocomask.frPyObjects([polygon.ravel().tolist()], height, width))[:, :, 0] > 0
        count = np.zeros(height * width, dtype=np.uint8)
        top = np.zeros(height * width, dtype=np.uint8)
        edge = np.zeros((height, width), dtype=bool)
        kept, *_ = paint_shapes(polygon, np.array([0, len(polygon)]), height, width, radius, False, count, top, edge)
        assert kept.tolist() == ([0] if mask.any() else [])
        assert np.array_equal(count.reshape(width, height).T, mask)
        expected = mask & ~binary_erosion(mask, structure=_octagon(radius), border_value=1)
        assert np.array_equal(edge, expected)
