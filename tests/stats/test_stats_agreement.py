"""Annotator agreement (Sec. 4): region and edge consistency, grouping of annotations by image while streaming."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as cocomask

from amodaldata.stats import StatsAccumulator
from amodaldata.stats.agreement import (AgreementTally, AnnotationRecord, edge_f, modal_iou, pair_scores,
                                        region_f)
from amodaldata.stats.edges import label_edges
from amodaldata.stats.geometry import SceneGeometry

from .conftest import box, layered_scene


def record(scene):
    return AnnotationRecord.of(scene, SceneGeometry.of(scene, scene.layers))


def two_objects(annotator, shift=0):
    """A person over a car over the ground, 60 x 80 (shifted right by ``shift`` pixels)."""
    return layered_scene([box(60, 80, 10, 40, 10 + shift, 25 + shift), box(60, 80, 25, 45, 5 + shift, 45 + shift),
                          box(60, 80, 35, 60, 0, 80)], annotator=annotator, stuff=(3,))


def test_identical_annotators_agree_fully():
    a, b = record(two_objects("ann1")), record(two_objects("ann2"))
    scores = pair_scores(a, b, a.visible_edges(), b.visible_edges())
    assert scores == {"region_amodal": 1.0, "region_modal": 1.0, "edge": 1.0}


def test_disjoint_annotators_agree_not_at_all():
    a = record(layered_scene([box(60, 80, 0, 20, 0, 20)], annotator="ann1"))
    b = record(layered_scene([box(60, 80, 40, 60, 60, 80)], annotator="ann2"))
    scores = pair_scores(a, b, a.visible_edges(), b.visible_edges())
    assert scores == {"region_amodal": 0.0, "region_modal": 0.0, "edge": 0.0}


def test_region_f_counts_one_to_one_matches_at_half_iou():
    # ground truth of 2 regions, prediction of 1 matching one of them: P = 1, R = 1/2, F = 2/3
    assert region_f(np.array([[0.8], [0.1]])) == pytest.approx(2 / 3)
    # one predicted region cannot match two ground-truth regions
    assert region_f(np.array([[0.6], [0.55]])) == pytest.approx(2 / 3)
    assert region_f(np.array([[0.49, 0.0], [0.0, 0.5]])) == pytest.approx(0.5)
    assert region_f(np.zeros((0, 0))) is None
    assert region_f(np.zeros((2, 0))) == 0.0


def test_edge_f_matches_pixels_one_to_one_within_the_tolerance():
    line = np.stack([np.full(20, 10.0), np.arange(20.0)], axis=1)
    assert edge_f(line, line + [2, 0], max_distance=2.5) == 1.0
    assert edge_f(line, line + [3, 0], max_distance=2.5) == 0.0
    # 20 ground-truth pixels against 40 (two parallel lines, both near): only 20 can match one to one
    assert edge_f(line, np.concatenate([line + [1, 0], line - [1, 0]]), 2.5) == pytest.approx(2 * 0.5 / 1.5)


def test_modal_iou_from_runs_equals_pycocotools_on_the_visible_masks():
    sa, sb = two_objects("ann1"), two_objects("ann2", shift=3)
    iou = modal_iou(record(sa), record(sb))
    rle = [[cocomask.encode(np.asfortranarray(s.layers.visible(r.id), dtype=np.uint8)) for r in s.regions]
           for s in (sa, sb)]
    assert iou == pytest.approx(np.asarray(cocomask.iou(rle[0], rle[1], [0, 0, 0])))


def test_visible_edges_of_a_record_are_the_edges_of_slice_zero():
    scene = two_objects("ann1")
    assert np.array_equal(record(scene).visible_edges(), np.argwhere(label_edges(scene.layers.ids[0])))


def test_accumulator_groups_annotators_of_one_image_and_gives_n_n_minus_1_scores():
    acc = StatsAccumulator()
    for name in ("a", "b", "c"):
        acc.add(two_objects(name))
    acc.add(layered_scene([box(60, 80, 0, 10, 0, 10)], image_id="alone"))
    result = acc.result()["agreement"]
    assert result["images"] == 1
    for kind in ("region_amodal", "region_modal", "edge"):
        assert result[kind]["n"] == 6 and result[kind]["median"] == 1.0
        assert sum(result[kind]["histogram"]["counts"]) == 6


def test_annotations_after_their_image_was_scored_are_reported():
    tally = AgreementTally(window=1)
    first, second = record(two_objects("a")), record(layered_scene([box(60, 80, 0, 10, 0, 10)], image_id="x"))
    for r in (first, second, record(two_objects("b")), record(two_objects("c"))):
        tally.add(r)
    tally.finish()
    result = tally.result()
    assert result["late_annotations"] == 1
    assert result["images"] == 1 and result["edge"]["n"] == 2      # only b and c were paired
