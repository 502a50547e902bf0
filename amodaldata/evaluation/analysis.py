"""Looking into a segmentation result: its precision-recall curves, where its errors come from, AP per class and
AP against the occlusion rate. The numbers behind :mod:`.plots`.

Error breakdown, as COCO's analysis tool (``CocoEval.analyze`` of the COCO API, after Hoiem et al., "Diagnosing
error in object detectors", 2012), per bucket: precision at the 101 recall points, averaged over the categories
with ground truth in the bucket, after forgiving one kind of error more at each step:

- ``C75``, ``C50``: the evaluation's own curves at IoU .75 and .50;
- ``Loc``: at IoU .10 (poor localisation forgiven; duplicate detections still count);
- ``Sim``: and a detection on a region of another category of the same supercategory is ignored;
- ``Oth``: and a detection on a region of any other category is ignored;
- ``BG``: and every other false positive (background) is removed: precision 1 up to the recall ``Oth`` reaches;
- ``FN``: and every miss is removed: precision 1 at every recall.

Class-agnostic (COCOA) results have no class confusion: ``Sim`` and ``Oth`` equal ``Loc``; without
supercategories ``Sim`` equals ``Loc``. ``Loc``, ``Sim`` and ``Oth`` are computed by pycocotools' ``COCOeval``
with the bucket's ground truth outside it ignored (the COCOA protocol of :mod:`.segmentation`); the
confused regions of ``Sim``/``Oth`` are added as ignored regions of the detection's category, as the COCO tool
does.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..scene import Scene
from .groundtruth import annotator_passes, crowd_flags, occlusion_rates, scored_masks, sort_key
from .predictions import Prediction, PredictionSet, group_by_image
from .segmentation import (IOU_THRESHOLDS, OCCLUSION_LEVELS, RECALL_POINTS, Bucket, SegmentationResult,
                           evaluate_segmentation)

#: The error kinds of COCO's analysis tool, from the strictest curve to the most forgiving.
ERRORS = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
#: IoU at which localisation errors are forgiven.
LOC_IOU = 0.1
#: Edges of the occlusion-rate bins of :func:`ap_by_occlusion`: rate 0, then (0, .1], (.1, .2], ... (.9, 1].
OCCLUSION_BINS = np.round(np.linspace(0.0, 1.0, 11), 2)


def _mean_curve(precision: np.ndarray) -> np.ndarray:
    """Mean over the last axis (categories) of a ``(R, K)`` precision array, -1 entries (no ground truth) left
    out; -1 everywhere when no category has ground truth."""
    valid = precision > -1
    n = valid.sum(axis=-1)
    total = np.where(valid, precision, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), -1.0)


def curve_ap(curve: np.ndarray) -> float:
    """The AP of a curve at the recall points: its mean (-1 for a bucket without ground truth)."""
    return float(curve.mean()) if curve.size and curve[0] > -1 else -1.0


def _need_curves(result: SegmentationResult) -> tuple[np.ndarray, np.ndarray]:
    if result.precision is None or result.recall is None:
        raise ValueError("the curves need one annotator set: evaluate with annotator='first' "
                         f"(this result averages {result.annotator_sets} sets)")
    return result.precision, result.recall


def bucket_index(result: SegmentationResult, bucket: Bucket) -> int:
    """Position of ``bucket`` in the result's buckets (by name)."""
    for i, scores in enumerate(result.buckets):
        if scores.bucket.name == bucket.name:
            return i
    raise KeyError(f"the result has no bucket {bucket.name!r}")


def pr_curves(result: SegmentationResult, b: int) -> dict[str, np.ndarray]:
    """Precision at the recall points of bucket ``b`` at IoU .50, .75 and averaged over .50:.95, at the largest
    max-detections value, averaged over categories: the curves whose means are AP50, AP75 and AP."""
    precision, _ = _need_curves(result)
    p = precision[b, ..., -1]                                           # (T, R, K)
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
    valid = p > -1                                                      # the same categories at every (t, r)
    mean = np.where(valid.any(axis=0), np.where(valid, p, 0.0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1),
                    -1.0)
    return {"IoU .50": _mean_curve(p[t50]), "IoU .75": _mean_curve(p[t75]), "IoU .50:.95": _mean_curve(mean)}


def result_categories(scenes: Iterable[Scene], result: SegmentationResult) -> list[Any]:
    """The category ids along the category axis of ``result.precision``: those of the scored ground truth (first
    annotation of each image), in the evaluation's order (:func:`~.groundtruth.sort_key`)."""
    precision, _ = _need_curves(result)
    if not result.class_aware:
        return [None]
    passes = annotator_passes(scenes, "first")
    cats = sorted({r.category_id for s in (passes[0].values() if passes else []) for r in s.regions}, key=sort_key)
    if len(cats) != precision.shape[3]:
        raise ValueError(f"the result has {precision.shape[3]} categories, these scenes {len(cats)}: not the "
                         "scenes it was computed on")
    return cats


def ap_by_class(result: SegmentationResult, b: int) -> np.ndarray:
    """AP (IoU .50:.95) of every category in bucket ``b``, -1 where the category has no ground truth there."""
    precision, _ = _need_curves(result)
    p = precision[b, ..., -1]                                           # (T, R, K)
    valid = p > -1
    n = valid.sum(axis=(0, 1))
    return np.where(n > 0, np.where(valid, p, 0.0).sum(axis=(0, 1)) / np.maximum(n, 1), -1.0)


# -- AP against the occlusion rate --------------------------------------------------------------------------
@dataclass(frozen=True)
class OcclusionBin(Bucket):
    """A bucket of the regions whose occlusion rate lies in ``(low, high]`` (``[0, 0]``: the unoccluded ones)."""

    low: float = 0.0
    high: float = 0.0

    @property
    def name(self) -> str:
        return "occlusion 0" if self.high == 0 else f"occlusion ({self.low:g}, {self.high:g}]"

    def counts(self, rates: np.ndarray, stuff: np.ndarray) -> np.ndarray:
        inside = (rates == 0) if self.high == 0 else (rates > self.low) & (rates <= self.high)
        return inside & Bucket(self.subset).counts(rates, stuff)


def occlusion_bins(edges: Sequence[float] = tuple(OCCLUSION_BINS)) -> list[OcclusionBin]:
    """Rate exactly 0, then one bin per pair of consecutive ``edges``."""
    return [OcclusionBin(low=0.0, high=0.0)] + [OcclusionBin(low=float(a), high=float(b))
                                                 for a, b in zip(edges[:-1], edges[1:])]


def ap_by_occlusion(scenes: Sequence[Scene], predictions: PredictionSet | Sequence[Prediction],
                    result: SegmentationResult, bins: Sequence[OcclusionBin] | None = None) -> SegmentationResult:
    """The evaluation of ``result`` again (same protocol), with one bucket per occlusion-rate bin."""
    return evaluate_segmentation(scenes, predictions, class_aware=result.class_aware, gt_mask=result.gt_mask,
                                 annotator="first", max_dets=result.max_dets,
                                 buckets=list(bins) if bins is not None else occlusion_bins(), keep_matches=False)


# -- the error breakdown ------------------------------------------------------------------------------------
def level_buckets(subset: str = "all") -> list[Bucket]:
    """The subset overall, then per occlusion level: the panels of the error breakdown."""
    return [Bucket(subset)] + [Bucket(subset, level) for level in OCCLUSION_LEVELS]


@dataclass
class ErrorBreakdown:
    """The curves of :data:`ERRORS` for one bucket (each ``(R,)``, -1 everywhere without ground truth)."""

    bucket: Bucket
    n_gt: int
    curves: dict[str, np.ndarray]

    def ap(self, kind: str) -> float:
        return curve_ap(self.curves[kind])

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket.name, "regions": self.n_gt,
                "AP": {k: self.ap(k) for k in ERRORS},
                "curves": {k: [round(float(v), 6) for v in c] for k, c in self.curves.items()}}


def error_breakdown(scenes: Sequence[Scene], predictions: PredictionSet | Sequence[Prediction],
                    result: SegmentationResult, buckets: Sequence[Bucket] | None = None,
                    supercategories: Mapping[Any, str] | None = None) -> list[ErrorBreakdown]:
    """COCO's error breakdown (module docstring) of ``result`` in each of ``buckets`` (default: overall and per
    occlusion level, :func:`level_buckets`). ``scenes`` and ``predictions`` are those ``result`` was computed
    on; ``supercategories`` maps category ids to supercategory names (for ``Sim``)."""
    _need_curves(result)
    buckets = list(buckets) if buckets is not None else level_buckets()
    data = _CocoData.build(scenes, predictions, result, buckets)
    out = []
    for j, bucket in enumerate(buckets):
        b = bucket_index(result, bucket)
        curves = pr_curves(result, b)
        loc = data.curve(j, "Loc", supercategories)
        sim = data.curve(j, "Sim", supercategories) if result.class_aware and supercategories else loc
        oth = data.curve(j, "Oth", supercategories) if result.class_aware else loc
        bg = np.where(oth > -1, (oth > 0).astype(float), -1.0)
        fn = np.where(oth > -1, 1.0, -1.0)
        out.append(ErrorBreakdown(bucket, result.buckets[b].n_gt,
                                  {"C75": curves["IoU .75"], "C50": curves["IoU .50"], "Loc": loc, "Sim": sim,
                                   "Oth": oth, "BG": bg, "FN": fn}))
    return out


@dataclass
class _CocoData:
    """The scored ground truth and the detections as pycocotools annotation records (images and categories
    numbered from 1, in the evaluation's order), with each region's membership of each bucket."""

    images: list[dict]
    regions: list[dict]
    counts: np.ndarray           # (buckets, regions) bool: the region counts in the bucket
    detections: list[dict]
    numbers: dict[Any, int]      # category id -> its number (class-agnostic: every region is category 1)
    max_det: int
    class_aware: bool

    @classmethod
    def build(cls, scenes: Sequence[Scene], predictions: PredictionSet | Sequence[Prediction],
              result: SegmentationResult, buckets: Sequence[Bucket]) -> "_CocoData":
        passes = annotator_passes(scenes, "first")
        gt = passes[0] if passes else {}
        by_image, _ = group_by_image(predictions, passes)
        keys = sorted(gt, key=lambda k: sort_key(gt[k].id))
        if result.class_aware:
            ids = sorted({r.category_id for s in gt.values() for r in s.regions}, key=sort_key)
            numbers = {c: i + 1 for i, c in enumerate(ids)}
        else:
            numbers = {None: 1}

        def number(category_id: Any) -> int | None:
            return numbers.get(category_id) if result.class_aware else 1

        images, regions, counts, detections = [], [], [], []
        for n, key in enumerate(keys, start=1):
            scene = gt[key]
            images.append({"id": n, "height": scene.height, "width": scene.width})
            rates = occlusion_rates(scene)
            rate = np.array([rates[r.id] for r in scene.regions], dtype=float)
            stuff = np.array([r.is_stuff for r in scene.regions], dtype=bool)
            crowd = crowd_flags(scene)
            for region, mask, is_crowd in zip(scene.regions, scored_masks(scene, result.gt_mask, rates), crowd):
                regions.append({"image_id": n, "category_id": number(region.category_id),
                                "segmentation": mask.to_rle(), "iscrowd": int(is_crowd)})
            if scene.regions:
                counts.append(np.stack([b.counts(rate, stuff) & ~crowd for b in buckets]))
            for p in by_image.get(key, []):
                if number(p.category_id) is not None:       # a category without ground truth is left out, as the
                    detections.append({"image_id": n, "category_id": number(p.category_id),   # evaluation does
                                       "segmentation": p.mask.to_rle(), "score": float(p.score)})
        return cls(images, regions, np.concatenate(counts, axis=1) if counts else np.zeros((len(buckets), 0), bool),
                   detections, numbers, result.max_dets[-1], result.class_aware)

    def curve(self, j: int, kind: str, supercategories: Mapping[Any, str] | None) -> np.ndarray:
        """``Loc``, ``Sim`` or ``Oth`` precision at the recall points for bucket ``j``, averaged over categories."""
        gts = [{**region, "area": 1.0 if self.counts[j, i] else -1.0}     # outside the bucket: outside the one
               for i, region in enumerate(self.regions)]                     # area range, so ignored
        if kind in ("Sim", "Oth"):
            gts += self._confused(kind, supercategories or {})
        precision = _cocoeval(self.images, gts, self.detections, sorted(self.numbers.values()), self.max_det,
                              self.class_aware)
        return _mean_curve(precision)

    def _confused(self, kind: str, supercategories: Mapping[Any, str]) -> list[dict]:
        """For each image and each category detected there, the regions of the other categories (``Oth``) or of
        the other categories of its supercategory (``Sim``), as ignored regions of the detected category."""
        group = {n: supercategories.get(c) for c, n in self.numbers.items()}
        detected: dict[int, set[int]] = {}
        for d in self.detections:
            detected.setdefault(d["image_id"], set()).add(d["category_id"])
        extra = []
        for region in self.regions:
            for c in sorted(detected.get(region["image_id"], ())):
                if c == region["category_id"]:
                    continue
                if kind == "Sim" and (group[c] is None or group[c] != group[region["category_id"]]):
                    continue
                extra.append({**region, "category_id": c, "iscrowd": 0, "area": -1.0})
        return extra


def _cocoeval(images: list[dict], gts: list[dict], dts: list[dict], categories: list[int], max_det: int,
              use_cats: bool, iou: float = LOC_IOU) -> np.ndarray:
    """pycocotools' COCOeval at IoU ``iou``, one area range [0, 2] (the bucket flag), ``max_det`` detections
    per image: precision ``(R, K)`` (-1 for categories without ground truth in range)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def dataset(anns: list[dict]) -> COCO:
        coco = COCO()
        coco.dataset = {"images": images, "categories": [{"id": c} for c in categories],
                        "annotations": [{**a, "id": i + 1} for i, a in enumerate(anns)]}
        coco.createIndex()
        return coco

    with contextlib.redirect_stdout(io.StringIO()):          # pycocotools reports every step on stdout
        ground_truth = dataset(gts)
        detections = dataset([{**d, "area": 1.0, "iscrowd": 0} for d in dts])
        evaluator = COCOeval(ground_truth, detections, "segm")
        params = evaluator.params
        params.imgIds = [im["id"] for im in images]
        params.catIds = categories
        params.iouThrs = np.array([iou])
        params.recThrs = RECALL_POINTS
        params.maxDets = [max_det]
        params.areaRng = [[0.0, 2.0]]
        params.areaRngLbl = ["bucket"]
        params.useCats = int(use_cats)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][0, :, :, 0, 0]


# -- per image ----------------------------------------------------------------------------------------------
def image_recalls(result: SegmentationResult) -> list[tuple[Any, int, int]]:
    """``(image id, matched, missed)`` of every image with a region to find, from the match table (all regions,
    IoU .5, the first annotator set), lowest recall first (ties: more missed first, then the image order)."""
    counts: dict[Any, list[int]] = {}
    for row in result.matches:
        if row.annotator == 0 and row.at50 in ("tp", "missed"):
            counts.setdefault(row.image_id, [0, 0])[row.at50 == "missed"] += 1
    order = sorted(counts, key=lambda i: (counts[i][0] / sum(counts[i]), -counts[i][1], sort_key(i)))
    return [(i, counts[i][0], counts[i][1]) for i in order]
