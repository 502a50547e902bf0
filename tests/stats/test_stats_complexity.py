"""Scene complexity (occlusion DAG, CCs, depth layers, log fit) and occlusion levels on hand-made scenes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amodaldata.stats.complexity import ComplexityTally, components, occlusion_dag, overlap_pairs
from amodaldata.stats.geometry import SceneGeometry

from .conftest import box, layered_scene


def dag_of(scene):
    layers = scene.layers
    return occlusion_dag([r.id for r in scene.regions], overlap_pairs(SceneGeometry.of(scene, layers), layers))


def test_three_region_chain_is_one_component_of_three_layers():
    # A over B over C; A and C do not touch.
    a, b, c = box(20, 30, 0, 10, 0, 10), box(20, 30, 5, 15, 8, 18), box(20, 30, 10, 20, 16, 26)
    dag = dag_of(layered_scene([a, b, c]))
    assert set(dag.edges) == {(1, 2), (2, 3)}
    sizes, layers = components(dag)
    assert sizes.tolist() == [3] and layers.tolist() == [3]


def test_two_separate_pairs_are_two_components():
    regions = [box(20, 40, 0, 10, 0, 10), box(20, 40, 5, 15, 5, 15),
               box(20, 40, 0, 10, 25, 35), box(20, 40, 5, 15, 30, 40)]
    sizes, layers = components(dag_of(layered_scene(regions)))
    assert sorted(sizes.tolist()) == [2, 2] and layers.tolist() == [2, 2]


def test_star_of_objects_over_one_background_needs_two_layers():
    objects = [box(40, 40, y, y + 5, x, x + 5) for y in (5, 25) for x in (5, 25)]
    background = box(40, 40, 0, 40, 0, 40)
    sizes, layers = components(dag_of(layered_scene([*objects, background])))
    assert sizes.tolist() == [5] and layers.tolist() == [2]


def test_isolated_regions_are_components_of_one_layer():
    sizes, layers = components(dag_of(layered_scene([box(10, 30, 0, 5, 0, 5), box(10, 30, 0, 5, 10, 15)])))
    assert sorted(sizes.tolist()) == [1, 1] and layers.tolist() == [1, 1]


def test_log_fit_recovers_exact_coefficients():
    tally = ComplexityTally()
    for size in (2, 4, 8, 16, 32):
        tally.add(np.array([size, 1]), np.array([1 + 0.5 * np.log2(size), 1]))   # the size-1 CC is not fitted
    fit = tally.log_fit()
    assert fit["n"] == 5
    assert fit["slope"] == pytest.approx(0.5) and fit["intercept"] == pytest.approx(1.0)
    assert fit["r2"] == pytest.approx(1.0)
    result = tally.result()
    assert result["components_per_annotation"]["histogram"] == {"2": 5}
    assert result["layers_by_size"]["1"] == {"components": 5, "mean_layers": 1.0}


def test_occlusion_levels_of_a_partly_hidden_region():
    front = box(10, 10, 0, 10, 0, 5)         # covers the left half of the back region
    back = box(10, 10, 0, 10, 0, 10)
    scene = layered_scene([front, back])
    levels = SceneGeometry.of(scene, scene.layers).occlusion_levels()
    assert levels.tolist() == [0.0, 0.5]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_overlap_pairs_and_levels_match_brute_force(random_scenes, data):
    scene = data.draw(random_scenes)
    layers = scene.layers
    rank = {rid: k for k, rid in enumerate(layers.front_to_back)}
    bitmaps = {r.id: r.amodal.to_bitmap() for r in scene.regions}
    expected = {(a, b) if rank[a] < rank[b] else (b, a)
                for a in bitmaps for b in bitmaps if a < b and (bitmaps[a] & bitmaps[b]).any()}
    geometry = SceneGeometry.of(scene, layers)
    assert {tuple(p) for p in overlap_pairs(geometry, layers).tolist()} == expected
    for k, region in enumerate(scene.regions):
        if layers.area(region.id):
            assert geometry.occlusion_levels()[k] == pytest.approx(layers.occlusion_rate(region.id))
            assert geometry.area[k] == layers.area(region.id)
        else:
            assert np.isnan(geometry.occlusion_levels()[k])
