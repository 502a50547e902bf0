"""Pairwise depth order: pairs, matching, the three sources of a predicted order, and the baselines."""

from __future__ import annotations

import pytest

from amodaldata.errors import AnnotationError
from amodaldata.evaluation import Prediction, evaluate_order
from amodaldata.evaluation.order import ground_truth_predictions, match_regions, overlapping_pairs
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.targets import semdist_map
from converters import read


@pytest.fixture
def scenes(make_box) -> list[Scene]:
    """Image 1: a small region low in the image in front of a large one (both baselines right), and a lone
    region; image 2: a large region in front of a small one lower in the image (both baselines wrong)."""
    one = Scene(1, 20, 40, [Region(1, make_box(20, 40, 8, 0, 20, 10)), Region(2, make_box(20, 40, 0, 5, 15, 30)),
                            Region(3, make_box(20, 40, 0, 35, 5, 40))], OcclusionOrder({(1, 2)}))
    two = Scene(2, 20, 40, [Region(1, make_box(20, 40, 0, 0, 12, 30)), Region(2, make_box(20, 40, 6, 20, 20, 26))],
                OcclusionOrder({(1, 2)}))
    return [one, two]


def ranked(scenes: list[Scene], reverse: bool = False) -> list[Prediction]:
    preds = [p for s in scenes for p in ground_truth_predictions(s)]
    for p in preds:
        p.order = (10 - p.order) if reverse else p.order
    return preds


def test_pairs_are_the_overlapping_regions_front_first(scenes):
    assert overlapping_pairs(scenes[0]) == [(1, 2)]
    assert overlapping_pairs(scenes[1]) == [(1, 2)]
    flipped = Scene(3, 20, 40, scenes[0].regions, OcclusionOrder({(2, 1)}))
    assert overlapping_pairs(flipped) == [(2, 1)]


def test_explicit_order(scenes):
    right = evaluate_order(scenes, ranked(scenes))
    assert right.source == "order"
    assert (right.model.pairs, right.model.recalled, right.model.correct) == (2, 2, 2)
    assert right.model.accuracy == 1.0 and right.model.recall == 1.0
    wrong = evaluate_order(scenes, ranked(scenes, reverse=True))
    assert wrong.model.accuracy == 0.0
    assert [r.verdict for r in wrong.pairs] == ["wrong", "wrong"]
    tied = ranked(scenes)
    for p in tied:
        p.order = 1
    undecided = evaluate_order(scenes, tied)
    assert undecided.model.undecided == 2 and undecided.model.accuracy == 0.0


def test_baselines_and_self_check(scenes):
    res = evaluate_order(scenes, ranked(scenes))
    by_name = {b.name: b for b in res.baselines}
    assert by_name["smaller area in front"].correct == 1 and by_name["smaller area in front"].pairs == 2
    assert by_name["lower in the image in front"].correct == 1
    assert by_name["ground truth as input"].accuracy == 1.0


def test_order_from_amodal_and_visible_masks(scenes):
    preds = []
    for s in scenes:
        for i, r in enumerate(s.regions):
            preds.append(Prediction(s.id, r.amodal, 0.5, visible=Mask.from_bitmap(s.layers.visible(r.id)), index=i))
    res = evaluate_order(scenes, preds)
    assert res.source == "masks" and res.model.accuracy == 1.0
    swapped = [Prediction(p.image_id, p.mask, p.score, visible=p.mask, index=p.index) for p in preds]
    assert evaluate_order(scenes, swapped, source="masks").model.undecided == 2


def test_order_from_semdist_maps(scenes):
    preds = []
    for s in scenes:
        for i, r in enumerate(s.regions):
            semdist = semdist_map(s.layers, r.id)
            lazily = i % 2 == 1                        # a map, or a function that loads it (as a reader gives)
            preds.append(Prediction(s.id, r.amodal, 0.5, semdist=(lambda m=semdist: m) if lazily else semdist,
                                    index=i))
    res = evaluate_order(scenes, preds)
    assert res.source == "semdist" and res.model.accuracy == 1.0


def test_unmatched_regions_are_not_recalled(scenes, make_box):
    preds = [p for p in ranked(scenes) if not (p.image_id == 1 and p.index == 1)]
    res = evaluate_order(scenes, preds)
    assert (res.model.pairs, res.model.recalled, res.model.correct) == (2, 1, 1)
    assert res.model.recall == 0.5 and res.model.correct_fraction == 0.5
    row = [r for r in res.pairs if r.image_id == 1][0]
    assert (row.verdict, row.front_prediction, row.back_prediction) == ("unrecalled", 0, None)
    # a prediction below the IoU threshold does not match
    far = Prediction(1, make_box(20, 40, 0, 5, 4, 30), 0.5, order=2, index=9)
    assert match_regions(scenes[0], [far], 0.5) == {}


def test_matching_is_one_to_one_by_best_iou(make_box):
    big, inner = make_box(20, 20, 0, 0, 20, 20), make_box(20, 20, 0, 0, 15, 20)
    scene = Scene(1, 20, 20, [Region(1, big), Region(2, inner)], OcclusionOrder({(2, 1)}))
    # the prediction equal to region 2 also has IoU 0.75 with region 1; region 1 gets the other prediction
    preds = [Prediction(1, inner, 0.9, order=1, index=0), Prediction(1, make_box(20, 20, 0, 0, 18, 20), 0.9,
                                                                     order=2, index=1)]
    assert match_regions(scene, preds, 0.5) == {2: 0, 1: 1}


def test_no_order_information_is_an_error(scenes):
    preds = [Prediction(s.id, r.amodal, 0.5) for s in scenes for r in s.regions]
    with pytest.raises(AnnotationError, match="no depth order"):
        evaluate_order(scenes, preds)
    with pytest.raises(AnnotationError, match="no 'visible' mask"):
        evaluate_order(scenes, preds, source="masks")


def test_real_cocoa(cocoa_json):
    scenes = list(read(cocoa_json, format="cocoa"))
    res = evaluate_order(scenes, [p for s in scenes for p in ground_truth_predictions(s)])
    assert res.model.pairs > 30 and res.model.accuracy == 1.0
    assert [b.name for b in res.baselines] == ["smaller area in front", "lower in the image in front",
                                               "ground truth as input"]
    assert res.baselines[2].accuracy == 1.0
    assert all(0.0 < b.accuracy < 1.0 for b in res.baselines[:2])
    visible = [Prediction(s.id, r.amodal, 0.5, visible=Mask.from_bitmap(s.layers.visible(r.id)), index=i)
               for s in scenes for i, r in enumerate(s.regions)]
    derived = evaluate_order(scenes, visible).model
    assert derived.correct + derived.undecided == derived.recalled == derived.pairs   # never the wrong way
    assert derived.accuracy > 0.8
