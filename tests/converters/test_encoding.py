"""StackRuns: every region's visible / hidden RLE and the overlapping pairs, read off the layer stack's runs,
equal what image-sized rasters give (real COCOA scenes and random stacks of rectangles)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask

from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from converters.cocoa import read_cocoa
from amodaldata.stack_runs import StackRuns
from converters.encoding import IdAllocator


def encoded(bitmap: np.ndarray) -> str:
    return cocomask.encode(np.asfortranarray(bitmap.astype(np.uint8)))["counts"].decode()


def check(scene: Scene) -> None:
    stack = scene.layers
    runs = StackRuns(stack)
    for region in scene.regions:
        assert runs.visible_rle(region.id)["counts"] == encoded(stack.visible(region.id))
        assert runs.invisible_rle(region.id)["counts"] == encoded(stack.invisible(region.id))
    position = {rid: i for i, rid in enumerate(stack.front_to_back)}
    expected = {(a.id, b.id) for a in scene.regions for b in scene.regions
                if position[a.id] < position[b.id] and (stack.amodal(a.id) & stack.amodal(b.id)).any()}
    assert {(int(a), int(b)) for a, b in runs.overlapping_pairs()} == expected


def test_real_scenes(cocoa_json):
    for scene in read_cocoa(cocoa_json):
        check(scene)


def test_row_major_stacks_give_the_same_runs(cocoa_json):
    scene = list(read_cocoa(cocoa_json))[2]
    column_major = scene.layers
    row_major = LayerStack.from_bitmaps([(rid, column_major.amodal(rid)) for rid in column_major.front_to_back],
                                        scene.height, scene.width)
    assert row_major.ids.flags.c_contiguous and not column_major.ids.flags.c_contiguous
    a, b = StackRuns(column_major), StackRuns(row_major)
    for rid in column_major.front_to_back:
        assert a.visible_rle(rid) == b.visible_rle(rid) and a.invisible_rle(rid) == b.invisible_rle(rid)
    assert np.array_equal(a.overlapping_pairs(), b.overlapping_pairs())


rectangles = st.lists(st.tuples(st.integers(0, 15), st.integers(0, 11), st.integers(1, 16), st.integers(1, 12)),
                      min_size=0, max_size=7)


@settings(max_examples=60, deadline=None)
@given(rectangles)
def test_random_stacks(rects):
    h, w = 12, 16
    regions = []
    for rid, (x, y, dx, dy) in enumerate(rects, start=1):
        bitmap = np.zeros((h, w), dtype=bool)
        bitmap[y:y + dy, x:x + dx] = True
        regions.append(Region(rid, Mask.from_bitmap(bitmap)))
    ids = [r.id for r in regions]
    order = OcclusionOrder({(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]})
    check(Scene(id=1, height=h, width=w, regions=regions, order=order))


def test_id_allocator_keeps_wanted_ids_while_free():
    ids = IdAllocator()
    assert ids.take(5) == (5, True)
    assert ids.take(None) == (6, True)
    assert ids.take(5) == (7, False)
    assert ids.take(1) == (1, True)
