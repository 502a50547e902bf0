"""The layer stack: exact against the real COCOA release masks, and its invariants on random scenes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amodaldata.errors import DepthCycleError
from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from converters.cocoa import read_cocoa

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _release_pairs(cocoa_json, cocoa_raw):
    """(scene, raw annotation) pairs of the demo release file, in file order."""
    return list(zip(read_cocoa(cocoa_json), cocoa_raw["annotations"]))


def test_stack_reproduces_release_visible_and_invisible_masks(cocoa_json, cocoa_raw):
    occluded = 0
    for scene, ann in _release_pairs(cocoa_json, cocoa_raw):
        stack = scene.layers
        for region, raw in zip(scene.regions, ann["regions"]):
            if "visible_mask" in raw:
                occluded += 1
                visible = Mask.from_rle(raw["visible_mask"], scene.height, scene.width).to_bitmap()
                invisible = Mask.from_rle(raw["invisible_mask"], scene.height, scene.width).to_bitmap()
                assert np.array_equal(stack.visible(region.id), visible), (scene.id, region.id)
                assert np.array_equal(stack.invisible(region.id), invisible), (scene.id, region.id)
            else:   # the release stores no masks for unoccluded regions: all of it is visible
                assert not stack.invisible(region.id).any(), (scene.id, region.id)
                assert np.array_equal(stack.visible(region.id), region.amodal.to_bitmap())
    assert occluded >= 15      # the demo data has many occluded regions; the test must have compared them


def test_occlusion_rates_equal_the_release(cocoa_json, cocoa_raw):
    for scene, ann in _release_pairs(cocoa_json, cocoa_raw):
        stack = scene.layers
        for region, raw in zip(scene.regions, ann["regions"]):
            hidden = stack.area(region.id) - stack.visible_area(region.id)
            assert stack.area(region.id) == raw["area"]
            # the release computed |invisible| / (area + 1e-6): bit for bit the same with our pixel counts
            assert hidden / (raw["area"] + 1e-6) == raw["occlude_rate"], (scene.id, region.id)
            assert stack.occlusion_rate(region.id) == hidden / raw["area"]


def test_stack_agrees_with_the_given_visible_masks(cocoa_json):
    for scene in read_cocoa(cocoa_json):
        for region in scene.regions:
            if region.visible is not None:
                assert np.array_equal(scene.layers.visible(region.id), region.visible.to_bitmap())


def test_real_stack_layout(cocoa_json):
    for scene in read_cocoa(cocoa_json):
        stack = scene.layers
        assert stack.ids.shape == (stack.depth, scene.height, scene.width)
        assert stack.depth == int(stack.count.max())
        assert np.array_equal(stack.count, (stack.ids > 0).sum(axis=0))
        assert sorted(stack.front_to_back) == sorted(r.id for r in scene.regions)


def _brute_force(scene: Scene, front_to_back: tuple[int, ...]):
    """Per region, the level at each pixel by definition (regions nearer in the order covering it), -1 outside."""
    masks = {r.id: r.amodal.to_bitmap() for r in scene.regions}
    above = np.zeros((scene.height, scene.width), dtype=np.int64)
    levels = {}
    for rid in front_to_back:
        levels[rid] = np.where(masks[rid], above, -1)
        above += masks[rid]
    return masks, levels, above


@PROPERTY
@given(data=st.data())
def test_visible_masks_partition_the_union_of_amodal_masks(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    visible = np.stack([stack.visible(r.id) for r in scene.regions])
    amodal = np.stack([r.amodal.to_bitmap() for r in scene.regions])
    assert (visible.sum(axis=0) <= 1).all()                       # disjoint
    assert not (visible & ~amodal).any()                           # inside their amodal masks
    assert np.array_equal(visible.any(axis=0), amodal.any(axis=0))  # covering the union
    for r in scene.regions:
        assert np.array_equal(stack.visible(r.id) | stack.invisible(r.id), stack.amodal(r.id))
        assert not (stack.visible(r.id) & stack.invisible(r.id)).any()


@PROPERTY
@given(data=st.data())
def test_levels_follow_the_order(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    position = {rid: i for i, rid in enumerate(stack.front_to_back)}
    for front, back in scene.order.edges:
        assert position[front] < position[back]
    masks, levels, count = _brute_force(scene, stack.front_to_back)
    assert np.array_equal(stack.count, count)
    for rid, expected in levels.items():
        assert np.array_equal(stack.level_map(rid), expected)
        assert stack.area(rid) == masks[rid].sum()
        rate = (expected > 0).sum() / masks[rid].sum() if masks[rid].any() else 0.0
        assert stack.occlusion_rate(rid) == pytest.approx(rate)
    # slice k holds the (k+1)-th nearest region
    for k in range(stack.depth):
        for rid, expected in levels.items():
            assert np.array_equal(stack.ids[k] == rid, expected == k)
    assert stack.depth == int(count.max())


@PROPERTY
@given(data=st.data())
def test_the_three_constructors_agree(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    bitmaps = [(rid, scene.region(rid).amodal.to_bitmap()) for rid in stack.front_to_back]
    other = LayerStack.from_bitmaps(bitmaps, scene.height, scene.width)
    assert np.array_equal(other.ids, stack.ids)
    assert np.array_equal(other.count, stack.count)
    for rid in stack.front_to_back:
        assert np.array_equal(other.level_map(rid), stack.level_map(rid))


def test_padded_pads_and_truncates():
    a = np.zeros((3, 4), bool)
    a[:, :2] = True
    b = np.zeros((3, 4), bool)
    b[:, 1:3] = True
    stack = LayerStack.from_bitmaps([(7, a), (9, b)], 3, 4)
    assert stack.depth == 2
    assert stack.padded(1).shape == (1, 3, 4)
    assert np.array_equal(stack.padded(1)[0], [[7, 7, 9, 0]] * 3)
    padded = stack.padded(4)
    assert padded.shape == (4, 3, 4) and not padded[2:].any()
    assert np.array_equal(padded[1], [[0, 9, 0, 0]] * 3)
    assert stack.max_level(9) == 1 and stack.max_level(7) == 0


def test_empty_scene_and_empty_region():
    empty = Scene(id=1, height=2, width=3)
    assert empty.layers.depth == 0 and empty.layers.ids.shape == (0, 2, 3)
    scene = Scene(id=2, height=2, width=3, regions=[Region(1, Mask.from_bitmap(np.zeros((2, 3), bool)))])
    assert scene.layers.area(1) == 0 and scene.layers.occlusion_rate(1) == 0.0
    assert scene.layers.max_level(1) == -1


def test_cyclic_order_names_the_scene_and_the_cycle():
    full = Mask.from_bitmap(np.ones((2, 2), bool))
    scene = Scene(id=42, height=2, width=2, annotation_id=5,
                  regions=[Region(1, full), Region(2, full), Region(3, full)],
                  order=OcclusionOrder({(1, 2), (2, 3), (3, 1)}))
    with pytest.raises(DepthCycleError) as info:
        scene.layers
    assert sorted(info.value.cycle) == [1, 2, 3]
    assert "image 42" in str(info.value) and "annotation 5" in str(info.value)


@pytest.mark.parametrize("big_id, dtype", [(200, np.uint8), (300, np.uint16), (70_000, np.int32),
                                           (2**33, np.int64)])
def test_stack_ids_use_the_narrowest_type_and_keep_every_id(big_id, dtype):
    square = np.zeros((6, 5), bool)
    square[1:4, 1:4] = True
    scene = Scene(id=1, height=6, width=5, regions=[
        Region(big_id, Mask.from_bitmap(square)), Region(7, Mask.from_bitmap(np.roll(square, 1, axis=0)))],
        order=OcclusionOrder({(big_id, 7)}))
    stack = scene.layers
    assert stack.ids.dtype == dtype
    assert set(np.unique(stack.ids).tolist()) == {0, 7, big_id}
    assert stack.padded(3).dtype in (np.int32, np.int64)
    assert np.array_equal(stack.padded(3)[:2], stack.ids)


def test_a_stack_of_already_laid_pixels_equals_the_computed_one(random_bitmaps):
    """``from_laid`` with the running count done by the caller (as the shapes generator does) gives the stack
    ``from_rles`` computes, with the slices filled here or given; a scene takes it instead of computing it."""
    from amodaldata import rle
    from amodaldata.stack_kernels import lay_runs

    h, w = 9, 13
    bitmaps = random_bitmaps(3, 5, h, w)
    texts = [rle.encode(b)["counts"] for b in bitmaps]
    rids = [5, 2, 9, 1, 4]
    expected = LayerStack.from_rles(list(zip(rids, texts)), h, w)
    starts, ends, run_offsets, _ = rle.runs(texts, h * w)
    count = np.zeros(h * w, dtype=np.uint8)
    pixels, levels, offsets = lay_runs(starts, ends, run_offsets, count)
    stack = LayerStack.from_laid(rids, pixels, levels, offsets, count, h, w)
    given_ids = LayerStack.from_laid(rids, pixels, levels, offsets, count, h, w,
                                     ids=np.ascontiguousarray(expected.ids.transpose(0, 2, 1)).ravel())
    for got in (stack, given_ids):
        assert np.array_equal(got.ids, expected.ids) and np.array_equal(got.count, expected.count)
        assert got.front_to_back == expected.front_to_back
        for rid in rids:
            assert np.array_equal(got.amodal(rid), expected.amodal(rid))
            assert np.array_equal(got.level_map(rid), expected.level_map(rid))
    scene = Scene(1, h, w, [Region(rid, Mask.from_bitmap(b)) for rid, b in zip(rids, bitmaps)],
                  OcclusionOrder({(a, b) for i, a in enumerate(rids) for b in rids[i + 1:]}))
    scene.set_layers(stack)
    assert scene.layers is stack
    with pytest.raises(ValueError, match="does not fit"):
        Scene(2, h, w + 1, []).set_layers(stack)
