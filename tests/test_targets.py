"""Targets from the layer stack: sem-dist maps and their decoders (SLN Eq. 1-5), layering maps, layered masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amodaldata import targets as T
from amodaldata.masks import Mask
from amodaldata.scene import Region, Scene
from converters.cocoa import read_cocoa

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(data=st.data())
def test_semdist_decoders_invert_the_encoder(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    rids = [r.id for r in scene.regions]
    maps = T.semdist_maps(stack, rids)
    assert maps.dtype == np.float32 and maps.shape == (len(rids), scene.height, scene.width)
    for m, rid in zip(maps, rids):
        assert np.array_equal(m, T.semdist_map(stack, rid))
        assert np.array_equal(T.modal_mask(m), stack.visible(rid))             # Eq. 2
        assert np.array_equal(T.amodal_mask(m), stack.amodal(rid))             # Eq. 3
        assert np.array_equal(T.visibility_level(m), stack.level_map(rid))     # inverse of Eq. 1
        assert np.array_equal(T.amodal_heatmap(m)[stack.amodal(rid)],
                              np.full(stack.area(rid), T.GT_CONFIDENCE, np.float32))


@PROPERTY
@given(data=st.data())
def test_pairwise_depth_map_sign_matches_the_order(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    position = {rid: i for i, rid in enumerate(stack.front_to_back)}
    for a in scene.regions:
        for b in scene.regions:
            if a.id == b.id:
                continue
            r = T.pairwise_depth_map(T.semdist_map(stack, a.id), T.semdist_map(stack, b.id))   # Eq. 4-5
            both = stack.amodal(a.id) & stack.amodal(b.id)
            assert not r[~both].any()
            expected = 1 if position[a.id] < position[b.id] else -1
            assert (np.sign(r[both]) == expected).all()
            # R_AB is the difference of levels, so its magnitude counts the regions between them too
            assert np.array_equal(r[both], (stack.level_map(b.id) - stack.level_map(a.id))[both])
            decided = T.depth_order_from_semdist(T.semdist_map(stack, a.id), T.semdist_map(stack, b.id))
            assert decided == (expected if both.any() else 0)


@PROPERTY
@given(data=st.data(), max_level=st.integers(1, 4))
def test_layering_maps_are_capped_counts_and_levels(data, random_scenes, max_level):
    scene = data.draw(random_scenes)
    stack = scene.layers
    glm = T.global_layering_map(stack, max_level)
    assert glm.dtype == np.uint8
    assert np.array_equal(glm, np.minimum(stack.count, max_level))
    assert glm.max(initial=0) <= max_level
    rids = [r.id for r in scene.regions]
    ilm = T.instance_layering_maps(stack, rids, max_level)
    for row, rid in zip(ilm, rids):
        level = stack.level_map(rid)
        expected = np.where(level >= 0, np.minimum(level + 1, max_level), 0)
        assert np.array_equal(row, expected)
        assert np.array_equal(T.instance_layering_map(stack, rid, max_level), row)
    hot = T.one_hot(glm, max_level)
    assert hot.shape == (max_level + 1, scene.height, scene.width)
    assert np.array_equal(hot.sum(axis=0), np.ones(glm.shape)) and np.array_equal(hot.argmax(axis=0), glm)


@PROPERTY
@given(data=st.data(), layers=st.integers(1, 4))
def test_layered_masks_read_the_first_k_slices(data, random_scenes, layers):
    scene = data.draw(random_scenes)
    stack = scene.layers
    classes = {r.id: 10 + r.id for r in scene.regions[::2]}       # some regions have no class
    lm = T.layered_masks(stack, layers, classes)
    assert lm.classes.shape == lm.instances.shape == (layers, scene.height, scene.width)
    for k in range(layers):
        expected_ids = stack.ids[k] if k < stack.depth else np.zeros(stack.shape, stack.ids.dtype)
        assert np.array_equal(lm.instances[k], expected_ids)
        expected_classes = np.vectorize(lambda rid: classes.get(int(rid), 0), otypes=[np.int32])(expected_ids)
        assert np.array_equal(lm.classes[k], expected_classes)


def test_region_classes_default():
    full = Mask.from_bitmap(np.ones((2, 2), bool))
    scene = Scene(id=1, height=2, width=2, regions=[
        Region(1, full, category_id=7), Region(2, full, name=" dog "), Region(3, full, name="cat"), Region(4, full)])
    assert T.region_classes(scene, {"dog": 3}) == {1: 7, 2: 3, 3: 1, 4: 1}


def test_scene_targets_on_real_scenes(cocoa_json):
    for scene in read_cocoa(cocoa_json):
        t = T.scene_targets(scene, max_level=3, layers=3)
        n, h, w = len(scene.regions), scene.height, scene.width
        assert t["region_ids"].tolist() == [r.id for r in scene.regions]
        assert t["amodal"].shape == t["visible"].shape == t["semdist"].shape == (n, h, w)
        assert t["layered_classes"].shape == (3, h, w) and t["global_layering"].max() <= 3
        for i, region in enumerate(scene.regions):
            assert np.array_equal(t["amodal"][i], region.amodal.to_bitmap())
            assert np.array_equal(T.modal_mask(t["semdist"][i]), t["visible"][i])
            if region.visible is not None:
                assert np.array_equal(t["visible"][i], region.visible.to_bitmap())
            assert t["occlusion_rate"][i] == pytest.approx(scene.layers.occlusion_rate(region.id))
        assert np.array_equal(t["layer_stack"], scene.layers.ids)
        assert sorted(map(tuple, t["order_edges"].tolist())) == sorted(scene.order.edges)


def test_bad_parameters_are_refused(cocoa_json):
    stack = next(iter(read_cocoa(cocoa_json))).layers
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            T.semdist_map(stack, 1, confidence)
    with pytest.raises(ValueError, match="max_level"):
        T.global_layering_map(stack, 0)
    with pytest.raises(ValueError, match="layers"):
        T.layered_masks(stack, 0, {})


def test_crops_paste_back_to_the_dense_maps(cocoa_json):
    for scene in read_cocoa(cocoa_json):
        dense = T.scene_targets(scene, layers=3)
        boxed = T.scene_targets(scene, layers=3, crop=True)
        for key in ("amodal", "visible", "semdist", "instance_layering"):
            crops = boxed[key]
            assert np.array_equal(crops.dense(), dense[key]) and crops.dense().dtype == dense[key].dtype
            for (x0, y0, x1, y1), crop, plane in zip(crops.boxes, crops.crops, dense[key]):
                assert crop.shape == (y1 - y0, x1 - x0)
                assert np.count_nonzero(plane) == np.count_nonzero(crop)   # nothing outside the box
        for region, (x0, y0, x1, y1) in zip(scene.regions, boxed["boxes"]):
            ys, xs = np.nonzero(region.amodal.to_bitmap())
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
