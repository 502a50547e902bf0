"""The occlusion order: ranks, orders derived from masks, topological order, cycles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amodaldata.errors import DepthCycleError
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region
from converters.cocoa import read_cocoa

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_from_ranks_lower_rank_is_in_front():
    order = OcclusionOrder.from_ranks({1: 2, 2: 1, 3: 3})
    assert order.edges == {(2, 1), (2, 3), (1, 3)}
    assert OcclusionOrder.from_ranks({1: 2, 2: 1, 3: 3}, overlapping=[(1, 3)]).edges == {(1, 3)}
    assert OcclusionOrder.from_ranks({1: 1, 2: 1}).edges == set()     # equal ranks: no edge


def test_cycles_are_refused_with_the_regions_named():
    order = OcclusionOrder({(1, 2), (2, 3), (3, 1), (3, 4)})
    with pytest.raises(DepthCycleError) as info:
        order.front_to_back([1, 2, 3, 4])
    assert sorted(info.value.cycle) == [1, 2, 3]
    assert "cycle through regions" in str(info.value)
    assert sorted(order.find_cycle()) == [1, 2, 3]
    assert order.find_cycle([3, 4]) == []
    with pytest.raises(DepthCycleError):
        OcclusionOrder({(5, 5)})


def test_front_to_back_breaks_ties_by_rank_then_position():
    order = OcclusionOrder({(3, 1)})
    assert order.front_to_back([1, 2, 3]) == [2, 3, 1]
    assert order.front_to_back([1, 2, 3], tie_break={2: 9, 3: 1, 1: 0}) == [3, 1, 2]
    assert order.in_front(3, 1) and not order.in_front(1, 3)


@PROPERTY
@given(n=st.integers(1, 8), data=st.data())
def test_front_to_back_respects_every_edge_of_a_random_dag(n, data):
    perm = data.draw(st.permutations(list(range(1, n + 1))))
    edges = {(perm[i], perm[j]) for i in range(n) for j in range(i + 1, n) if data.draw(st.booleans())}
    ids = data.draw(st.permutations(list(range(1, n + 1))))
    out = OcclusionOrder(edges).front_to_back(ids)
    assert sorted(out) == sorted(ids)
    position = {rid: i for i, rid in enumerate(out)}
    assert all(position[a] < position[b] for a, b in edges)
    assert OcclusionOrder(edges).front_to_back(ids) == out       # deterministic


@PROPERTY
@given(data=st.data())
def test_order_derived_from_masks_agrees_with_the_true_order(data, random_scenes):
    scene = data.draw(random_scenes)
    stack = scene.layers
    position = {rid: i for i, rid in enumerate(stack.front_to_back)}
    visible = [stack.visible(r.id) for r in scene.regions]
    derived = OcclusionOrder.from_masks(scene.regions, visible)
    for front, back in derived.edges:
        assert position[front] < position[back]
    # a pair gets an edge exactly when the nearer one is visible somewhere on the other's outline
    for a in scene.regions:
        for b in scene.regions:
            if position[a.id] < position[b.id]:
                shows = (stack.visible(a.id) & b.amodal.to_bitmap()).any()
                assert ((a.id, b.id) in derived.edges) == bool(shows)


def test_order_derived_from_the_real_visible_masks_matches_the_ranks(cocoa_json):
    checked = 0
    for scene in read_cocoa(cocoa_json):
        derived = OcclusionOrder.from_masks(scene.regions)     # uses the release's visible masks
        rank = {r.id: r.depth_rank for r in scene.regions}
        for front, back in derived.edges:
            assert rank[front] < rank[back], (scene.id, front, back)
            checked += 1
    assert checked >= 20


def test_from_masks_with_one_region_or_a_tie():
    full = Mask.from_bitmap(np.ones((2, 2), bool))
    assert OcclusionOrder.from_masks([Region(1, full)]).edges == set()
    # both regions entirely hidden where they meet: no evidence, no edge
    nothing = np.zeros((2, 2), bool)
    assert OcclusionOrder.from_masks([Region(1, full), Region(2, full)], [nothing, nothing]).edges == set()
