"""Raster geometry and Table 1 shape measures: closed forms, and properties against brute force on pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from amodaldata.masks import Mask
from amodaldata.stats.edges import label_edges
from amodaldata.stats.geometry import Pieces, boundary, edge_pixels, hull_areas, perimeters
from amodaldata.stats.shape import convexity, mask_shape, simplicity

SQUARE_SIMPLICITY = math.sqrt(4 * math.pi) / 4      # sqrt(4 pi s^2) / (4 s)


def polygon_bitmap(points: np.ndarray, size: int = 400) -> np.ndarray:
    """Rasterise a polygon the way every COCO-style dataset is (pycocotools)."""
    return Mask.from_polygons([points.ravel().tolist()], size, size).to_bitmap()


def disk(radius: float, size: int = 400) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    return polygon_bitmap(np.stack([size / 2 + 0.3 + radius * np.cos(t), size / 2 + 0.7 + radius * np.sin(t)], 1),
                          size)


def square(side: float, angle_deg: float = 0.0, size: int = 400) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return polygon_bitmap(corners @ rotation.T + size / 2, size)


def test_axis_aligned_square_is_convex_and_has_the_square_simplicity():
    bitmap = np.zeros((300, 300), dtype=bool)
    bitmap[50:250, 60:260] = True
    conv, simp = mask_shape([bitmap])
    assert conv[0] == 1.0                                   # hull of the pixel squares = the square itself
    assert simp[0] == pytest.approx(SQUARE_SIMPLICITY, rel=0.01)


@pytest.mark.parametrize("radius", [20, 60, 150])
def test_disk_has_convexity_and_simplicity_one(radius):
    conv, simp = mask_shape([disk(radius)])
    # The digitised disk (the union of its pixel squares) sticks out of the circle by a fraction of a pixel
    # along its outline, so its convexity tends to 1 as 1 / radius.
    assert 0 < 1 - conv[0] < 1 / radius
    assert simp[0] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("angle", [0, 10, 22.5, 30, 45])
def test_square_simplicity_holds_at_every_orientation(angle):
    conv, simp = mask_shape([square(240, angle)])
    assert simp[0] == pytest.approx(SQUARE_SIMPLICITY, rel=0.01)
    assert 0 <= 1 - conv[0] < 3 / 240          # a slanted digital edge is a staircase: 1 / side as for disks


def test_perimeter_of_polygons_is_within_two_percent_of_the_exact_length():
    rng = np.random.default_rng(7)
    for _ in range(5):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        radii = rng.uniform(60, 180, 12)
        points = np.stack([200 + radii * np.cos(angles), 200 + radii * np.sin(angles)], 1)
        pieces = Pieces.from_bitmaps([polygon_bitmap(points)])
        assert perimeters(boundary(pieces), 1)[0] == pytest.approx(shapely.Polygon(points).length, rel=0.02)


def test_a_segment_in_two_parts_is_one_set():
    """Two s x s squares a gap g apart: area 2 s^2, hull s (2 s + g), perimeter twice a square's."""
    s, g = 100, 40
    two = np.zeros((200, 300), dtype=bool)
    two[50:150, 20:120] = True
    two[50:150, 120 + g:220 + g] = True
    one = np.zeros((200, 300), dtype=bool)
    one[50:150, 20:120] = True
    pieces = Pieces.from_bitmaps([two, one])
    assert hull_areas(pieces)[0] == s * (2 * s + g)
    assert convexity(pieces.areas(), hull_areas(pieces))[0] == pytest.approx(2 * s * s / (s * (2 * s + g)))
    per = perimeters(boundary(pieces), 2)
    assert per[0] == pytest.approx(2 * per[1])
    assert mask_shape([two])[1][0] == pytest.approx(math.sqrt(4 * math.pi * 2 * s * s) / per[0])


def test_a_hole_adds_its_outline():
    ring = disk(120) & ~disk(50)
    per = perimeters(boundary(Pieces.from_bitmaps([ring])), 1)[0]
    assert per == pytest.approx(2 * math.pi * (120 + 50), rel=0.01)


def test_empty_masks_have_no_shape_and_single_pixels_are_measured():
    empty = np.zeros((5, 5), dtype=bool)
    pixel = empty.copy()
    pixel[2, 2] = True
    conv, simp = mask_shape([empty, pixel])
    assert np.isnan(conv[0]) and np.isnan(simp[0])
    assert conv[1] == 1.0
    assert simp[1] == pytest.approx(math.sqrt(4 * math.pi) / (4 * math.sqrt(0.5)))   # 4 diagonal steps
    assert np.isnan(simplicity(np.array([1.0]), np.array([0.0])))[0]


def test_masks_touching_the_image_border_are_closed_by_it():
    full = np.ones((30, 40), dtype=bool)
    pieces = Pieces.from_bitmaps([full])
    assert pieces.areas()[0] == 1200
    assert hull_areas(pieces)[0] == 1200
    traced = boundary(pieces)
    # one ring between the border pixels and the outside: 2 (29 + 39) straight steps and 4 corner cuts
    steps = np.hypot(traced.x2[traced.nxt] - traced.x2, traced.y2[traced.nxt] - traced.y2) / 2
    assert steps.sum() == pytest.approx(2 * (29 + 39) + 4 * math.sqrt(0.5))
    assert perimeters(traced, 1)[0] == pytest.approx(2 * (30 + 40), rel=0.03)
    assert edge_pixels(traced, 30, 40)[1].size == 0        # the image border is no edge


# The marching-squares step lengths of a 2x2 cell code (corners TL=1, TR=2, BR=4, BL=8), written out by hand.
STEP = np.zeros(16)
STEP[[1, 2, 4, 8, 7, 11, 13, 14]] = math.sqrt(0.5)
STEP[[3, 6, 9, 12]] = 1.0
STEP[[5, 10]] = 2 * math.sqrt(0.5)


def brute_steps(bitmap: np.ndarray) -> float:
    a = np.pad(bitmap, 1).astype(np.uint8)
    return float(STEP[a[:-1, :-1] + 2 * a[:-1, 1:] + 4 * a[1:, 1:] + 8 * a[1:, :-1]].sum())


def brute_hull(bitmap: np.ndarray) -> float:
    ys, xs = np.nonzero(bitmap)
    if xs.size == 0:
        return 0.0
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(float)
    return shapely.MultiPoint(corners).convex_hull.area


@settings(max_examples=60, deadline=None)
@given(st.lists(arrays(bool, st.tuples(st.just(9), st.just(11))), min_size=1, max_size=4))
def test_traced_boundary_matches_brute_force_on_random_masks(bitmaps):
    pieces = Pieces.from_bitmaps(bitmaps)
    traced = boundary(pieces)
    n = traced.mask.size
    assert np.array_equal(np.sort(traced.nxt), np.arange(n))          # every side starts exactly one step
    assert np.array_equal(traced.mask[traced.nxt], traced.mask)        # rings stay in their mask
    steps = np.hypot(traced.x2[traced.nxt] - traced.x2, traced.y2[traced.nxt] - traced.y2) / 2
    owner, flat = edge_pixels(traced, 9, 11)
    for k, bitmap in enumerate(bitmaps):
        assert pieces.areas()[k] == bitmap.sum()
        assert steps[traced.mask == k].sum() == pytest.approx(brute_steps(bitmap))
        assert hull_areas(pieces)[k] == pytest.approx(brute_hull(bitmap))
        assert np.array_equal(np.unique(flat[owner == k]), np.flatnonzero(label_edges(bitmap)))
        ys, xs = np.mgrid[-1:10, -1:12]                                  # the image and a ring outside it
        key = pieces.key(np.full(xs.size, k), xs.ravel(), ys.ravel())
        assert np.array_equal(pieces.holds(pieces.locate(key), key), np.pad(bitmap, 1).ravel())


def test_pieces_from_rle_equal_pieces_from_the_bitmap():
    bitmap = disk(40, 120) | square(30, 20, 120)
    rle = Mask.from_bitmap(bitmap).to_rle()
    a = Pieces.from_rles([rle["counts"]], 120, 120)
    b = Pieces.from_bitmaps([bitmap])
    for field in ("mask", "col", "top", "bottom"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
