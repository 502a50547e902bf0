"""The whole report on the real COCOA demo data, and per-scene measures against brute force on random scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amodaldata.stats import compute_stats, format_report, write_json
from amodaldata.stats.edges import label_edges, scene_edges
from amodaldata.stats.geometry import SceneGeometry
from amodaldata.stats.shape import mask_shape, scene_shapes
from converters import read

from .conftest import box, layered_scene


def test_occlusion_rates_recomputed_from_polygons_and_order_equal_the_release(cocoa_json, cocoa_raw):
    released = {(ann["id"], k + 1): region.get("occlude_rate")
                for ann in cocoa_raw["annotations"] for k, region in enumerate(ann["regions"])}
    checked = occluded = 0
    for scene in read(cocoa_json, format="cocoa"):
        levels = SceneGeometry.of(scene, scene.layers).occlusion_levels()
        for region, level in zip(scene.regions, levels):
            assert level == pytest.approx(released[(scene.annotation_id, region.id)], abs=1e-9)
            checked += 1
            occluded += level > 0
    assert checked == 48 and occluded == 24


def test_demo_summary_matches_the_release_counts(cocoa_json, cocoa_raw):
    result = compute_stats(read(cocoa_json, format="cocoa"))
    s = result["summary"]
    regions = [r for ann in cocoa_raw["annotations"] for r in ann["regions"]]
    assert s["images"] == 5 and s["annotations"] == 5
    assert s["regions_per_annotation"]["mean"] == pytest.approx(len(regions) / 5)
    assert s["points_per_region"]["all"]["mean"] == pytest.approx(np.mean([len(r["segmentation"]) / 2
                                                                           for r in regions]))
    occ = result["occlusion"]
    assert result["stuff_split"] and set(occ) == {"all", "things", "stuff"}
    assert occ["all"]["occlusion_rate"] == pytest.approx(np.mean([r["occlude_rate"] > 0 for r in regions]))
    assert occ["all"]["occ_per_region"] == pytest.approx(np.mean([r["occlude_rate"] for r in regions]))
    assert occ["stuff"]["regions"] == sum(r["isStuff"] for r in regions) == 1
    assert sum(occ["all"]["histogram"]["counts"]) == occ["all"]["occluded"] == 24
    density = result["edge_density"]
    assert 0 < density["modal"]["mean"] < density["amodal"]["mean"] < 0.05
    shape = result["shape"]["all"]
    for side in ("modal", "amodal"):
        for name in ("convexity", "simplicity"):
            assert 0.3 < shape[side][name]["mean"] <= 1.0
    assert shape["amodal"]["convexity"]["mean"] > shape["modal"]["convexity"]["mean"]   # Table 1's finding
    assert result["complexity"]["components_per_annotation"]["n"] == 5
    assert result["agreement"]["images"] == 0
    text = format_report(result)
    for heading in ("Dataset summary (Fig. 5a)", "Shape and edges (Table 1)", "Fig. 6a", "Scene complexity"):
        assert heading in text


def test_json_has_no_nan_and_is_written_atomically(tmp_path, cocoa_json):
    result = compute_stats(read(cocoa_json, format="cocoa"))
    path = write_json(result, tmp_path / "out" / "stats.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert [p.name for p in path.parent.iterdir()] == ["stats.json"]


def test_scenes_without_regions_or_with_empty_regions_are_measured():
    empty = layered_scene([np.zeros((8, 8), dtype=bool)])
    result = compute_stats([empty, layered_scene([box(8, 8, 0, 4, 0, 4), np.zeros((8, 8), dtype=bool)])])
    assert result["summary"]["annotations"] == 2
    assert result["occlusion"]["all"]["regions"] == 1                   # empty masks are not regions to measure
    assert result["shape"]["all"]["hidden"] == 0
    assert result["complexity"]["component_size"]["histogram"] == {"1": 1}


def test_fully_hidden_regions_have_no_modal_shape():
    scene = layered_scene([box(10, 10, 0, 10, 0, 10), box(10, 10, 2, 6, 2, 6)])
    shapes = scene_shapes(SceneGeometry.of(scene, scene.layers))
    assert not np.isnan(shapes["amodal"][0][1]) and np.isnan(shapes["modal"][0][1])
    assert compute_stats([scene])["shape"]["all"]["hidden"] == 1


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_scene_measures_match_brute_force_on_the_layer_stack(random_scenes, data):
    scene = data.draw(random_scenes)
    layers = scene.layers
    geometry = SceneGeometry.of(scene, layers)
    visible, amodal = scene_edges(geometry)
    assert np.array_equal(visible, label_edges(layers.ids[0]) if layers.depth else np.zeros_like(visible))
    union = np.zeros((scene.height, scene.width), dtype=bool)
    for region in scene.regions:
        union |= label_edges(region.amodal.to_bitmap())
    assert np.array_equal(amodal, union)
    shapes = scene_shapes(geometry)
    for side, bitmaps in (("amodal", [layers.amodal(r.id) for r in scene.regions]),
                          ("modal", [layers.visible(r.id) for r in scene.regions])):
        expected = mask_shape(bitmaps)
        for got, want in zip(shapes[side], expected):
            assert np.allclose(got, want, equal_nan=True)
