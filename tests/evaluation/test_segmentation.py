"""Amodal AP/AR: hand-checkable cases, agreement with pycocotools' COCOeval (the official COCOA API's numbers),
occlusion buckets, ground-truth masks, annotators and class-aware mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amodaldata.evaluation import Bucket, Prediction, evaluate_segmentation
from amodaldata.evaluation.groundtruth import occlusion_rates
from amodaldata.evaluation.order import ground_truth_predictions
from converters.results import results_from_entries
from amodaldata.evaluation.segmentation import OCCLUSION_LEVELS
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from converters import read

#: A precision of 1 is tp / (tp + fp + eps) in COCO's formula: 1 - 2e-16.
ONE = pytest.approx(1.0, abs=1e-12)


def one_square_scene(make_box, regions: int = 1) -> Scene:
    """Disjoint 10x10 squares side by side on a 20x60 image."""
    return Scene(1, 20, 60, [Region(i + 1, make_box(20, 60, 5, 2 + 20 * i, 15, 12 + 20 * i))
                             for i in range(regions)])


# -- hand-checkable cases ------------------------------------------------------------------------------------
def test_perfect_prediction_scores_one(cocoa_json):
    scenes = list(read(cocoa_json, format="cocoa"))
    preds = [p for s in scenes for p in ground_truth_predictions(s)]
    res = evaluate_segmentation(scenes, preds)
    overall = res.overall
    assert (overall.ap, overall.ap50, overall.ap75, overall.ar[100], overall.ar[1000]) == (ONE,) * 5
    assert overall.n_gt == sum(len(s.regions) for s in scenes)
    assert all(b.ap == pytest.approx(1.0) or b.n_gt == 0 for b in res.buckets)   # 1 / (1 + eps) as COCO
    assert {m.at50 for m in res.matches} == {"tp"}


def test_shifted_prediction_matches_up_to_its_iou(make_box):
    scene = one_square_scene(make_box)
    shifted = make_box(20, 60, 5, 3, 15, 13)      # one pixel right: IoU = 90 / 110 = 0.818
    res = evaluate_segmentation([scene], [Prediction(1, shifted, 0.9)])
    # matched at .50, .55, ..., .80: 7 of the 10 thresholds, with precision 1 there
    assert res.overall.ap == pytest.approx(0.7)
    assert res.overall.ar[1] == pytest.approx(0.7)
    assert res.overall.ap50 == ONE and res.overall.ap75 == ONE
    row, = res.matches
    assert (row.at50, row.at75, row.thresholds_matched) == ("tp", "tp", 7)
    assert row.iou == pytest.approx(90 / 110)


def test_duplicate_is_a_false_positive(make_box):
    scene = one_square_scene(make_box)
    gt = scene.regions[0].amodal
    after = evaluate_segmentation([scene], [Prediction(1, gt, 0.9), Prediction(1, gt, 0.8)])
    assert after.overall.ap == ONE                # the duplicate ranks after the true positive
    before = evaluate_segmentation([scene], [Prediction(1, gt, 0.8), Prediction(1, gt, 0.9)])
    assert before.overall.ap == ONE               # whichever copy ranks first takes the region
    assert sorted(m.at50 for m in before.matches) == ["fp", "tp"]
    away = make_box(20, 60, 0, 40, 4, 44)
    worse = evaluate_segmentation([scene], [Prediction(1, away, 0.9), Prediction(1, gt, 0.8)])
    assert worse.overall.ap == pytest.approx(0.5)  # precision 1/2 at every recall point
    assert worse.overall.ar[1] == 0.0 and worse.overall.ar[10] == 1.0


def test_missed_region_halves_recall(make_box):
    scene = one_square_scene(make_box, regions=2)
    res = evaluate_segmentation([scene], [Prediction(1, scene.regions[0].amodal, 0.7)])
    assert res.overall.ar[100] == 0.5
    assert res.overall.ap == pytest.approx(51 / 101)   # precision 1 at recall points 0 .. 0.50
    missed = [m for m in res.matches if m.at50 == "missed"]
    assert [(m.region_id, m.prediction) for m in missed] == [(2, None)]


def test_score_ties_keep_file_order(make_box, coco_reference):
    scene = one_square_scene(make_box)
    gt, away = scene.regions[0].amodal, make_box(20, 60, 0, 40, 4, 44)
    first_wrong = [Prediction(1, away, 0.5, index=0), Prediction(1, gt, 0.5, index=1)]
    first_right = [Prediction(1, gt, 0.5, index=0), Prediction(1, away, 0.5, index=1)]
    assert evaluate_segmentation([scene], first_wrong).overall.ap == pytest.approx(0.5)
    assert evaluate_segmentation([scene], first_right).overall.ap == ONE
    for preds in (first_wrong, first_right):
        precision, _ = coco_reference([scene], preds, 0)
        assert evaluate_segmentation([scene], preds).overall.ap == pytest.approx(precision[..., -1].mean())


def test_no_predictions_and_no_ground_truth(make_box):
    scene = one_square_scene(make_box)
    assert evaluate_segmentation([scene], []).overall.ap == 0.0
    empty = Scene(2, 20, 60, [])
    res = evaluate_segmentation([empty], [Prediction(2, make_box(20, 60, 0, 0, 3, 3), 0.4)])
    assert res.overall.ap == -1.0 and res.overall.n_gt == 0


# -- agreement with COCOeval --------------------------------------------------------------------------------
def random_task(seed: int, n_images: int = 12, h: int = 40, w: int = 50, n_cats: int = 3):
    """Random boxes (a tenth crowd, a third stuff) in a random depth order, and predictions: shifted copies
    of regions and random boxes, with many tied scores."""
    rng = np.random.default_rng(seed)
    scenes, preds = [], []
    for image_id in range(1, n_images + 1):
        regions = []
        for rid in range(1, int(rng.integers(0, 8)) + 1):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            bh, bw = rng.integers(3, 25, 2)
            bitmap = np.zeros((h, w), dtype=bool)
            bitmap[y:y + bh, x:x + bw] = True
            regions.append(Region(rid, Mask.from_bitmap(bitmap), category_id=int(rng.integers(1, n_cats + 1)),
                                  is_stuff=bool(rng.random() < 0.3), depth_rank=rid,
                                  is_crowd=bool(rng.random() < 0.1)))
        ranks = {r.id: int(v) for r, v in zip(regions, rng.permutation(len(regions)) + 1)}
        scenes.append(Scene(image_id, h, w, regions, OcclusionOrder.from_ranks(ranks)))
        for _ in range(int(rng.integers(0, 16))):
            if regions and rng.random() < 0.7:
                src = regions[rng.integers(len(regions))].amodal.to_bitmap()
                bitmap = np.roll(src, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
            else:
                y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
                bitmap = np.zeros((h, w), dtype=bool)
                bitmap[y:y + rng.integers(3, 25), x:x + rng.integers(3, 25)] = True
            score = float(rng.integers(0, 5) / 4) if rng.random() < 0.5 else float(rng.random())
            preds.append(Prediction(image_id, Mask.from_bitmap(bitmap), score,
                                    category_id=int(rng.integers(1, n_cats + 1)), index=len(preds)))
    return scenes, preds


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("class_aware", [False, True])
def test_agrees_with_cocoeval_on_random_cases(seed, class_aware, coco_reference):
    scenes, preds = random_task(seed)
    res = evaluate_segmentation(scenes, preds, class_aware=class_aware)
    precision, recall = coco_reference(scenes, preds, int(class_aware))
    np.testing.assert_allclose(res.precision[0], precision, atol=1e-12)
    np.testing.assert_allclose(res.recall[0], recall, atol=1e-12)
    valid = precision[..., -1][precision[..., -1] > -1]
    assert res.overall.ap == pytest.approx(valid.mean() if valid.size else -1.0, abs=1e-12)
    # buckets: regions outside are ignored exactly as the official API ignores them
    rates = {s.id: {r.id: s.layers.occlusion_rate(r.id) for r in s.regions} for s in scenes}
    checks = {
        1: lambda s, r: not r.is_stuff,
        2: lambda s, r: r.is_stuff,
        4: lambda s, r: 1e-5 <= rates[s.id][r.id] <= 0.25,
        11: lambda s, r: r.is_stuff and rates[s.id][r.id] >= 0.25,
        12: lambda s, r: rates[s.id][r.id] > 0.15,
    }
    for b, counts in checks.items():
        precision, recall = coco_reference(scenes, preds, int(class_aware), counts)
        np.testing.assert_allclose(res.precision[b], precision, atol=1e-12, err_msg=res.buckets[b].bucket.name)
        np.testing.assert_allclose(res.recall[b], recall, atol=1e-12, err_msg=res.buckets[b].bucket.name)


def jittered(scenes: list[Scene], seed: int) -> list[Prediction]:
    """Predictions = ground truth shifted by a few pixels, with some dropped and some spurious copies."""
    rng = np.random.default_rng(seed)
    preds = []
    for scene in scenes:
        for region in scene.regions:
            if rng.random() < 0.1:
                continue
            for _ in range(1 + int(rng.random() < 0.2)):
                shift = tuple(int(v) for v in rng.integers(-6, 7, 2))
                bitmap = np.roll(region.amodal.to_bitmap(), shift, axis=(0, 1))
                preds.append(Prediction(scene.id, Mask.from_bitmap(bitmap), float(rng.random()), index=len(preds)))
    return preds


def test_agrees_with_cocoeval_on_real_cocoa(cocoa_json, cocoa_raw, coco_reference):
    """Real COCOA ground truth, jittered predictions: overall and per-level numbers of the official protocol,
    the levels taken from the release's own ``occlude_rate`` fields."""
    scenes = list(read(cocoa_json, format="cocoa"))
    preds = jittered(scenes, 0)
    res = evaluate_segmentation(scenes, preds)
    precision, recall = coco_reference(scenes, preds, 0)
    np.testing.assert_allclose(res.precision[0], precision, atol=1e-12)
    np.testing.assert_allclose(res.recall[0], recall, atol=1e-12)
    assert 0.1 < res.overall.ap < 0.9
    released = {a["image_id"]: {i + 1: r["occlude_rate"] for i, r in enumerate(a["regions"])}
                for a in cocoa_raw["annotations"]}
    for subset, stuff in (("all", None), ("things", False), ("stuff", True)):
        for level, (lo, hi) in OCCLUSION_LEVELS.items():
            b = [i for i, s in enumerate(res.buckets) if s.bucket == Bucket(subset, level)][0]

            def counts(s, r, lo=lo, hi=hi, stuff=stuff):
                return lo <= released[s.id][r.id] <= hi and (stuff is None or r.is_stuff == stuff)

            precision, recall = coco_reference(scenes, preds, 0, counts)
            assert res.buckets[b].ar[1000] == pytest.approx(_mean(recall[..., -1]), abs=1e-4)
            assert res.buckets[b].ap == pytest.approx(_mean(precision[..., -1]), abs=1e-4)


def _mean(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


# -- occlusion rates and buckets ---------------------------------------------------------------------------
def test_occlusion_rates_equal_the_layer_stack_on_real_cocoa(cocoa_json, cocoa_raw):
    for scene, ann in zip(read(cocoa_json, format="cocoa"), cocoa_raw["annotations"]):
        rates = occlusion_rates(scene)
        for region, raw in zip(scene.regions, ann["regions"]):
            assert rates[region.id] == scene.layers.occlusion_rate(region.id)
            assert rates[region.id] == pytest.approx(raw["occlude_rate"], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_occlusion_rates_equal_the_layer_stack(data, random_scenes):
    scene = data.draw(random_scenes)
    rates = occlusion_rates(scene)
    assert rates == {r.id: scene.layers.occlusion_rate(r.id) for r in scene.regions}


def test_level_boundaries_are_inclusive():
    rates = np.array([0.0, 1e-5, 0.1, 0.25, 0.5, 1.0])
    stuff = np.zeros(6, dtype=bool)
    assert Bucket("all", "none").counts(rates, stuff).tolist() == [True, True, False, False, False, False]
    assert Bucket("all", "partial").counts(rates, stuff).tolist() == [False, True, True, True, False, False]
    assert Bucket("all", "heavy").counts(rates, stuff).tolist() == [False, False, False, True, True, True]
    assert Bucket("all", min_occlusion=0.15).counts(rates, stuff).tolist() == [False] * 3 + [True] * 3
    assert Bucket("stuff").counts(rates, np.arange(6) % 2 == 0).tolist() == [True, False] * 3


def test_outside_a_level_is_ignored_not_missed(make_box):
    """Front square hides exactly a quarter of the back one: the back one is partial and heavy (inclusive
    ends), and a detection of the front one is neither a true nor a false positive in those levels."""
    front = make_box(20, 20, 0, 0, 10, 5)
    back = make_box(20, 20, 0, 0, 10, 20)
    scene = Scene(1, 20, 20, [Region(1, front, depth_rank=1), Region(2, back, depth_rank=2)],
                  OcclusionOrder({(1, 2)}))
    assert occlusion_rates(scene) == {1: 0.0, 2: 0.25}
    res = evaluate_segmentation([scene], [Prediction(1, front, 0.9), Prediction(1, back, 0.8)])
    for name in ("all, partial [1e-05, 0.25]", "all, heavy [0.25, 1]"):
        assert res.bucket(name).n_gt == 1 and res.bucket(name).ap == ONE
    assert res.bucket("all, none [0, 1e-05]").ap == ONE
    only_front = evaluate_segmentation([scene], [Prediction(1, front, 0.9)])
    assert only_front.bucket("all, heavy [0.25, 1]").ap == 0.0
    assert only_front.bucket("all, occluded > 0.15").n_gt == 1


def test_visible_ground_truth_masks(cocoa_json):
    scenes = list(read(cocoa_json, format="cocoa"))
    visible = [Prediction(s.id, Mask.from_bitmap(s.layers.visible(r.id)), 1.0 - 0.01 * i, index=i)
               for s in scenes for i, r in enumerate(s.regions)]
    assert evaluate_segmentation(scenes, visible, gt_mask="visible").overall.ap == ONE
    assert evaluate_segmentation(scenes, visible, gt_mask="amodal").overall.ap < 0.9
    amodal = [p for s in scenes for p in ground_truth_predictions(s)]
    assert evaluate_segmentation(scenes, amodal, gt_mask="visible").overall.ap < 0.9


def test_visible_fallback_without_given_masks(make_box):
    """No given visible masks: unoccluded regions are scored as their amodal mask, occluded ones as the
    layer stack's visible part."""
    front, back = make_box(20, 20, 0, 0, 10, 10), make_box(20, 20, 0, 0, 10, 20)
    scene = Scene(1, 20, 20, [Region(1, front), Region(2, back)], OcclusionOrder({(1, 2)}))
    right_half = make_box(20, 20, 0, 10, 10, 20)
    res = evaluate_segmentation([scene], [Prediction(1, front, 0.9), Prediction(1, right_half, 0.8)],
                                gt_mask="visible")
    assert res.overall.ap == ONE


def test_annotator_first_or_each(make_box):
    a = Scene(1, 20, 60, [Region(1, make_box(20, 60, 5, 2, 15, 12))], annotator="a")
    b = Scene(1, 20, 60, [Region(1, make_box(20, 60, 5, 2, 15, 12)), Region(2, make_box(20, 60, 5, 22, 15, 32))],
              annotator="b")
    preds = [Prediction(1, a.regions[0].amodal, 0.9)]
    first = evaluate_segmentation([a, b], preds, annotator="first")
    assert first.overall.ap == ONE and first.annotator_sets == 1
    second_first = evaluate_segmentation([b, a], preds, annotator="first")
    assert second_first.overall.ar[100] == 0.5
    each = evaluate_segmentation([a, b], preds, annotator="each")
    assert each.annotator_sets == 2
    assert each.overall.ar[100] == pytest.approx((1.0 + 0.5) / 2)
    assert each.overall.ap == pytest.approx((1.0 + 51 / 101) / 2)
    assert {m.annotator for m in each.matches} == {0, 1}


def test_class_aware_needs_the_right_category(make_box):
    scene = Scene(1, 20, 60, [Region(1, make_box(20, 60, 5, 2, 15, 12), category_id=3)])
    mask = scene.regions[0].amodal
    assert evaluate_segmentation([scene], [Prediction(1, mask, 0.9, category_id=3)], class_aware=True).overall.ap == ONE
    wrong = evaluate_segmentation([scene], [Prediction(1, mask, 0.9, category_id=4)], class_aware=True)
    assert wrong.overall.ap == 0.0
    assert wrong.dropped == {"predictions of a category without ground truth": 1}
    assert evaluate_segmentation([scene], [Prediction(1, mask, 0.9, category_id=4)]).overall.ap == ONE


def test_class_aware_without_categories_names_the_region(cocoa_json):
    from amodaldata.errors import AnnotationError

    scenes = list(read(cocoa_json, format="cocoa"))
    with pytest.raises(AnnotationError, match="category id") as err:
        evaluate_segmentation(scenes, [], class_aware=True)
    named = {s.id: s for s in scenes}[err.value.image_id]
    assert err.value.region_id == named.regions[0].id and "region" in str(err.value)


def test_predictions_for_unknown_images_are_counted(make_box):
    scene = one_square_scene(make_box)
    entries = [{"image_id": 1, "segmentation": scene.regions[0].amodal.to_rle(), "score": 0.5},
               {"image_id": 99, "segmentation": [1, 1, 5, 1, 5, 5], "score": 0.5}]
    res = evaluate_segmentation([scene], results_from_entries(entries, {"1": (20, 60)}))
    assert res.overall.ap == ONE
    assert res.dropped == {"predictions for images without ground truth": 1}
    assert res.to_dict()["dropped"] == res.dropped


def test_max_dets_limit_each_image(make_box):
    scene = one_square_scene(make_box, regions=2)
    preds = [Prediction(1, make_box(20, 60, 0, 50, 2, 52), 0.9)] + \
        [Prediction(1, r.amodal, 0.5) for r in scene.regions]
    res = evaluate_segmentation([scene], preds, max_dets=(1, 2))
    assert res.overall.ar == {1: 0.0, 2: 0.5}
    assert res.max_dets == (1, 2)
