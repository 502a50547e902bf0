"""Amodal segmentation quality: COCO-style AP / AR, overall and per occlusion level (the COCOA protocol).

The protocol of the official COCOA API (Zhu et al. 2017, Sec. 5; amodalAPI ``amodaleval.py`` and
``batchEval.py``), which is COCO's ``cocoeval`` with one area range and the ground truth filtered:

- IoU thresholds .50:.05:.95, 101 recall points, max detections 1 / 10 / 100 / 1000, one area range;
  AP, AP50 and AP75 at the largest max-detections value, AR at each.
- Matching as COCO: detections by decreasing score (stable), each takes the unmatched ground truth of best
  IoU >= t, preferring regions that count over ignored ones; crowd regions can absorb many detections.
- Buckets: ground truth outside a bucket is *ignored* (a detection matched to it is neither a true nor a
  false positive), not removed. Subsets all / things / stuff (``isStuff``) crossed with the occlusion
  levels none [0, 1e-5], partial [1e-5, 0.25], heavy [0.25, 1] (inclusive ends, so a rate of exactly 1e-5
  or 0.25 is in two levels, as in the official code), and the occluded-only bucket (rate > ``min_occlusion``).
- Class-agnostic (COCOA: every region one class) or class-aware (COCOA-cls, KINS, D2SA: matching within a
  category, AP averaged over the categories that have ground truth, as COCO's ``useCats=1``).

The matching runs for every bucket and threshold at once, processing the k-th detection of every image
together, over the (detection, region) pairs with IoU >= 0.5 only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools import mask as cocomask

from ..errors import AnnotationError
from ..scene import Scene
from .groundtruth import Annotator, GtMask, annotator_passes, crowd_flags, occlusion_rates, scored_masks, sort_key
from .predictions import Part, Prediction, PredictionSet, group_by_image, part_predictions

#: IoU thresholds .50:.05:.95, built as pycocotools builds them (so .75 is the same float).
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
#: Recall points 0:.01:1.
RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
#: Max detections per image (COCOA's ``maxProp = 1000`` setting).
MAX_DETS = (1, 10, 100, 1000)
#: Occlusion levels of the official API, inclusive ends.
OCCLUSION_LEVELS: dict[str, tuple[float, float]] = {"none": (0.0, 1e-5), "partial": (1e-5, 0.25),
                                                     "heavy": (0.25, 1.0)}
SUBSETS = ("all", "things", "stuff")
#: Occlusion rate above which a region counts for the occluded-only AP.
MIN_OCCLUSION = 0.15


@dataclass(frozen=True)
class Bucket:
    """Which ground-truth regions count: a subset (all / things / stuff) and an occlusion range."""

    subset: str = "all"
    level: str | None = None
    min_occlusion: float | None = None

    @property
    def name(self) -> str:
        if self.min_occlusion is not None:
            return f"{self.subset}, occluded > {self.min_occlusion:g}"
        if self.level is None:
            return self.subset
        lo, hi = OCCLUSION_LEVELS[self.level]
        return f"{self.subset}, {self.level} [{lo:g}, {hi:g}]"

    def counts(self, rates: np.ndarray, stuff: np.ndarray) -> np.ndarray:
        """Bool per region: True where the region counts (is not ignored) in this bucket."""
        keep = np.ones(rates.shape, dtype=bool)
        if self.subset == "things":
            keep &= ~stuff
        elif self.subset == "stuff":
            keep &= stuff
        if self.level is not None:
            lo, hi = OCCLUSION_LEVELS[self.level]
            keep &= (rates >= lo) & (rates <= hi)
        if self.min_occlusion is not None:
            keep &= rates > self.min_occlusion
        return keep


def default_buckets(min_occlusion: float | None = MIN_OCCLUSION) -> list[Bucket]:
    """all / things / stuff, each overall and per occlusion level, then the occluded-only bucket."""
    out = [Bucket(s) for s in SUBSETS]
    out += [Bucket(s, level) for s in SUBSETS for level in OCCLUSION_LEVELS]
    if min_occlusion is not None:
        out.append(Bucket("all", min_occlusion=min_occlusion))
    return out


@dataclass
class BucketScores:
    """The metrics of one bucket; -1 where the bucket has no ground truth (as COCO)."""

    bucket: Bucket
    n_gt: int
    ap: float
    ap50: float
    ap75: float
    ar: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket.name, "subset": self.bucket.subset, "level": self.bucket.level,
                "min_occlusion": self.bucket.min_occlusion, "n_gt": self.n_gt, "AP": self.ap,
                "AP50": self.ap50, "AP75": self.ap75, **{f"AR{m}": v for m, v in self.ar.items()}}


@dataclass
class MatchRow:
    """One line of the per-image match table: a detection, or a ground-truth region no detection found."""

    annotator: int
    image_id: Any
    category_id: Any
    prediction: int | None
    score: float | None
    region_id: int | None
    iou: float
    at50: str
    at75: str
    thresholds_matched: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SegmentationResult:
    """Scores per bucket (averaged over annotator sets with ``annotator='each'``) and the match table."""

    buckets: list[BucketScores]
    class_aware: bool
    gt_mask: str
    annotator: str
    annotator_sets: int
    max_dets: tuple[int, ...]
    n_images: int
    n_predictions: int
    dropped: dict[str, int] = field(default_factory=dict)
    matches: list[MatchRow] = field(default_factory=list)
    #: COCO's ``precision`` (B, T, R, K, M) and ``recall`` (B, T, K, M) per bucket (one annotator set only).
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None

    def bucket(self, name: str) -> BucketScores:
        for scores in self.buckets:
            if scores.bucket.name == name:
                return scores
        raise KeyError(name)

    @property
    def overall(self) -> BucketScores:
        return self.buckets[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": {"mode": "class-aware" if self.class_aware else "class-agnostic",
                         "gt_mask": self.gt_mask, "annotator": self.annotator,
                         "annotator_sets": self.annotator_sets, "max_dets": list(self.max_dets),
                         "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS],
                         "recall_points": len(RECALL_POINTS), "ap_at_max_dets": self.max_dets[-1]},
            "images": self.n_images, "predictions": self.n_predictions, "dropped": self.dropped,
            "buckets": [b.to_dict() for b in self.buckets],
        }


@dataclass
class _Flat:
    """Every unit (an image, or an image x category when class-aware) flattened into arrays."""

    gt_counts: np.ndarray        # (B, G) bool: region counts in bucket b (never a crowd region)
    gt_crowd: np.ndarray         # (G,)
    gt_cat: np.ndarray           # (G,) category index
    gt_region: list[int]
    gt_image: list[Any]
    det_score: np.ndarray        # (D,) in unit order, each unit's detections by decreasing score
    det_rank: np.ndarray         # (D,)
    det_cat: np.ndarray          # (D,)
    det_entry: list[int]
    det_image: list[Any]
    det_best_iou: np.ndarray     # (D,)
    pair_det: np.ndarray         # (P,) pairs with IoU >= the lowest threshold
    pair_gt: np.ndarray
    pair_iou: np.ndarray
    categories: list[Any]


def evaluate_segmentation(scenes: Iterable[Scene], predictions: PredictionSet | Sequence[Prediction], *,
                          class_aware: bool = False, gt_mask: GtMask = "amodal",
                          min_occlusion: float | None = MIN_OCCLUSION, annotator: Annotator = "first",
                          max_dets: Sequence[int] = MAX_DETS, buckets: Sequence[Bucket] | None = None,
                          keep_matches: bool = True, part: Part = "amodal") -> SegmentationResult:
    """Score ``predictions`` against the ground-truth ``scenes`` (see the module docstring for the protocol).

    Predictions for images the ground truth lacks are left out and counted in ``result.dropped``, as are
    (class-aware) predictions of a category the ground truth never uses.

    ``part``: ``amodal`` scores the predicted amodal masks against the ``gt_mask`` masks; ``visible`` and
    ``occluded`` score the predicted visible / occluded parts against the same parts of the ground truth
    (Yin 2021, Table 1), unoccluded regions ignored for the occluded part (a prediction of an occluded part
    where none exists is a false positive; :func:`~.predictions.part_predictions`).
    """
    if part != "amodal":
        predictions = part_predictions(predictions, part)
        gt_mask = part
    max_dets = tuple(sorted(int(m) for m in max_dets))
    if not max_dets or max_dets[0] < 1:
        raise ValueError(f"max_dets must be positive integers, got {max_dets}")
    buckets = list(buckets) if buckets is not None else default_buckets(min_occlusion)
    passes = annotator_passes(scenes, annotator)
    by_image, dropped = group_by_image(predictions, passes)

    per_pass, matches = [], []
    precision = recall = None
    for j, gt in enumerate(passes):
        flat = _flatten(gt, by_image, class_aware, gt_mask, buckets, max_dets[-1], dropped if j == 0 else {})
        match = _greedy_match(flat)
        precision, recall = _accumulate(flat, match, max_dets)
        per_pass.append(_summaries(buckets, flat, precision, recall, max_dets))
        if keep_matches:
            matches += _match_rows(j, flat, match)
    scores = [_mean_scores([p[i] for p in per_pass]) for i in range(len(buckets))]
    n_images = len(passes[0]) if passes else 0
    if len(passes) > 1:                  # the curves of one set would not describe the averaged scores
        precision = recall = None
    return SegmentationResult(buckets=scores, class_aware=class_aware, gt_mask=gt_mask, annotator=annotator,
                              annotator_sets=len(passes), max_dets=max_dets, n_images=n_images,
                              n_predictions=sum(len(v) for v in by_image.values()), dropped=dropped, matches=matches,
                              precision=precision, recall=recall)


# -- flattening ------------------------------------------------------------------------------------------
def _flatten(gt: dict[str, Scene], preds: dict[str, list[Prediction]], class_aware: bool, gt_mask: GtMask,
             buckets: Sequence[Bucket], max_det: int, dropped: dict[str, int]) -> _Flat:
    """Prepare every unit: ground-truth flags per bucket, detections by score, and the IoU >= .5 pairs."""
    images = sorted(gt, key=lambda k: sort_key(gt[k].id))
    gt_counts, gt_crowd, gt_cat, gt_region, gt_image = [], [], [], [], []
    per_image: dict[str, tuple[list, np.ndarray, np.ndarray, list]] = {}
    categories: set = set()
    for key in images:
        scene = gt[key]
        rates = occlusion_rates(scene)
        rate = np.array([rates[r.id] for r in scene.regions], dtype=float)
        stuff = np.array([r.is_stuff for r in scene.regions], dtype=bool)
        counts = np.stack([b.counts(rate, stuff) for b in buckets], axis=0) if scene.regions else \
            np.zeros((len(buckets), 0), dtype=bool)
        if gt_mask == "occluded":                  # a region with no occluded part is ignored, never missed
            counts &= rate > 0
        cats = []
        for region in scene.regions:
            if class_aware and region.category_id is None:
                raise AnnotationError("class-aware evaluation needs a category id on every region",
                                      image_id=scene.id, annotation_id=scene.annotation_id, region_id=region.id)
            cats.append(region.category_id if class_aware else None)
        categories.update(cats)
        per_image[key] = ([m.to_pycocotools() for m in scored_masks(scene, gt_mask, rates)], counts,
                          crowd_flags(scene), cats)
    cat_list = sorted(categories, key=sort_key) if class_aware else [None]
    cat_index = {c: i for i, c in enumerate(cat_list)}

    det_score, det_rank, det_cat, det_entry, det_image, det_best = [], [], [], [], [], []
    pair_det, pair_gt, pair_iou = [], [], []
    n_gt = n_det = 0
    gt_by_cat: dict[tuple[str, Any], list[int]] = {}
    det_by_cat: dict[tuple[str, Any], list[Prediction]] = {}
    for key in images:
        labels = [r.category_id for r in gt[key].regions]
        dets = preds.get(key, [])
        if not class_aware:     # pycocotools' useCats=0 lists regions and detections by category: same ties
            dets = sorted(dets, key=lambda p: _label_order(p.category_id))
            region_order = sorted(range(len(labels)), key=lambda i: _label_order(labels[i]))
            if region_order:
                gt_by_cat[(key, None)] = region_order
        else:
            for i, c in enumerate(labels):
                gt_by_cat.setdefault((key, c), []).append(i)
        for p in dets:
            det_by_cat.setdefault((key, p.category_id if class_aware else None), []).append(p)
    for k, cat in enumerate(cat_list):
        for key in images:
            rles, counts, crowd, _ = per_image[key]
            g_idx = gt_by_cat.get((key, cat), [])
            dets = det_by_cat.get((key, cat), [])
            if not g_idx and not dets:
                continue
            order = np.argsort([-p.score for p in dets], kind="mergesort")[:max_det]
            dets = [dets[i] for i in order]
            scene = gt[key]
            for i in g_idx:
                gt_region.append(scene.regions[i].id)
                gt_image.append(scene.id)
            gt_counts.append(counts[:, g_idx] & ~crowd[g_idx])
            gt_crowd.append(crowd[g_idx])
            gt_cat.append(np.full(len(g_idx), k))
            for rank, p in enumerate(dets):
                det_score.append(p.score)
                det_rank.append(rank)
                det_entry.append(p.index)
                det_image.append(scene.id)
            det_cat.append(np.full(len(dets), k))
            if dets and g_idx:
                ious = np.asarray(cocomask.iou([p.mask.to_pycocotools() for p in dets],
                                               [rles[i] for i in g_idx], [int(crowd[i]) for i in g_idx]),
                                  dtype=float).reshape(len(dets), len(g_idx))
                det_best.append(ious.max(axis=1))
                d, g = np.nonzero(ious >= IOU_THRESHOLDS[0])
                pair_det.append(d + n_det)
                pair_gt.append(g + n_gt)
                pair_iou.append(ious[d, g])
            else:
                det_best.append(np.zeros(len(dets)))
            n_gt += len(g_idx)
            n_det += len(dets)
    if class_aware:
        stray = sum(len(v) for (_, c), v in det_by_cat.items() if c not in cat_index)
        if stray:
            dropped["predictions of a category without ground truth"] = \
                dropped.get("predictions of a category without ground truth", 0) + stray

    def join(parts: list, dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return _Flat(
        gt_counts=np.concatenate(gt_counts, axis=1) if gt_counts else np.zeros((len(buckets), 0), bool),
        gt_crowd=join(gt_crowd, bool), gt_cat=join(gt_cat, np.int64), gt_region=gt_region, gt_image=gt_image,
        det_score=np.asarray(det_score, dtype=float), det_rank=np.asarray(det_rank, dtype=np.int64),
        det_cat=join(det_cat, np.int64), det_entry=det_entry, det_image=det_image,
        det_best_iou=join(det_best, float), pair_det=join(pair_det, np.int64), pair_gt=join(pair_gt, np.int64),
        pair_iou=join(pair_iou, float), categories=cat_list)


def _label_order(category_id: Any) -> tuple:
    return (0,) if category_id is None else (1, *sort_key(category_id))


# -- matching --------------------------------------------------------------------------------------------
def _greedy_match(flat: _Flat) -> np.ndarray:
    """COCO's greedy matching for every bucket and IoU threshold: ``(B, T, D)`` matched region index or -1.

    The k-th detection of every unit is processed at once (units are independent; within a unit the order
    is by score). A detection takes, among the regions still free (crowd regions always are) with IoU >= t,
    the one of largest IoU among those that count in the bucket, else among the ignored ones; on equal IoU
    the later region wins, as in pycocotools' loop.
    """
    n_b = flat.gt_counts.shape[0]
    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    n_t, n_g, n_d = len(thr), flat.gt_counts.shape[1], len(flat.det_score)
    match = np.full((n_b, n_t, n_d), -1, dtype=np.int64)
    if not len(flat.pair_det):
        return match
    taken = np.zeros((n_b, n_t, n_g), dtype=bool)
    rank = flat.det_rank[flat.pair_det]
    order = np.lexsort((flat.pair_gt, flat.pair_det, rank))
    p_det, p_gt, p_iou, rank = flat.pair_det[order], flat.pair_gt[order], flat.pair_iou[order], rank[order]
    bounds = np.flatnonzero(np.diff(rank)) + 1
    counts = flat.gt_counts
    crowd = flat.gt_crowd
    ok_all = p_iou[None, :] >= thr[:, None]                               # (T, P)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(rank)]):
        d, g, ok = p_det[lo:hi], p_gt[lo:hi], ok_all[:, lo:hi]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        seg = np.cumsum(np.r_[True, d[1:] != d[:-1]]) - 1
        cand = (~taken[:, :, g] | crowd[g]) & ok[None]                      # (B, T, P)
        real = cand & counts[:, None, g]
        has_real = np.logical_or.reduceat(real, starts, axis=2)
        use = np.where(has_real[:, :, seg], real, cand)
        key = np.where(use, p_iou[lo:hi], -1.0)
        best = np.maximum.reduceat(key, starts, axis=2)
        pos = np.where(use & (key == best[:, :, seg]), np.arange(hi - lo), -1)
        choice = np.maximum.reduceat(pos, starts, axis=2)                 # (B, T, S)
        b_i, t_i, s_i = np.nonzero(choice >= 0)
        chosen = g[choice[b_i, t_i, s_i]]
        taken[b_i, t_i, chosen] = True
        match[b_i, t_i, d[starts[s_i]]] = chosen
    return match


# -- accumulation ----------------------------------------------------------------------------------------
def _accumulate(flat: _Flat, match: np.ndarray, max_dets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """COCO's ``accumulate``: precision ``(B, T, R, K, M)`` and recall ``(B, T, K, M)``, -1 without ground truth."""
    n_b, n_t, _ = match.shape
    n_k, n_m, n_r = len(flat.categories), len(max_dets), len(RECALL_POINTS)
    precision = -np.ones((n_b, n_t, n_r, n_k, n_m))
    recall = -np.ones((n_b, n_t, n_k, n_m))
    matched = match >= 0
    # a detection matched to a region that does not count in the bucket is ignored
    ignored = np.zeros_like(matched)
    b_i, t_i, d_i = np.nonzero(matched)
    ignored[b_i, t_i, d_i] = ~flat.gt_counts[b_i, match[b_i, t_i, d_i]]
    true_pos = matched & ~ignored
    false_pos = ~matched
    counted = flat.gt_counts
    for k in range(n_k):
        dets = np.flatnonzero(flat.det_cat == k)
        npig = counted[:, flat.gt_cat == k].sum(axis=1)                    # (B,)
        if not len(dets) and not np.any(flat.gt_cat == k):
            continue
        previous: tuple[int, int] | None = None
        for m, max_det in enumerate(max_dets):
            sel = dets[flat.det_rank[dets] < max_det]
            if previous is not None and previous[0] == len(sel):           # same detections as max_dets[m-1]
                precision[..., k, m] = precision[..., k, previous[1]]
                recall[..., k, m] = recall[..., k, previous[1]]
                continue
            previous = (len(sel), m)
            sel = sel[np.argsort(-flat.det_score[sel], kind="mergesort")]
            for b in range(n_b):
                if npig[b] == 0:
                    continue
                precision[b, :, :, k, m], recall[b, :, k, m] = _pr_curve(true_pos[b][:, sel],
                                                                         false_pos[b][:, sel], int(npig[b]))
    return precision, recall


def _pr_curve(tps: np.ndarray, fps: np.ndarray, npig: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision at the recall points ``(T, R)`` and final recall ``(T,)`` (COCO's formulas)."""
    n_t, n = tps.shape
    if n == 0:
        return np.zeros((n_t, len(RECALL_POINTS))), np.zeros(n_t)
    tp_sum = np.cumsum(tps, axis=1)
    fp_sum = np.cumsum(fps, axis=1)
    tp_f = tp_sum.astype(float)
    rc_last = tp_f[:, -1] / npig
    pr = tp_f / (fp_sum + tp_f + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    # searchsorted(rc, recall point, 'left') with rc = tp_sum / npig: the first position whose count reaches
    # the smallest integer v with v / npig >= point (same float division as pycocotools), on integer counts
    need = np.ceil(RECALL_POINTS * npig).astype(np.int64)
    need = np.where((need - 1) / npig >= RECALL_POINTS, need - 1, need)
    need = np.where(need / npig < RECALL_POINTS, need + 1, need)
    stride = npig + 2
    offsets = np.arange(n_t, dtype=np.int64)[:, None] * stride
    inds = np.searchsorted((tp_sum + offsets).ravel(), (need[None, :] + offsets).ravel(), side="left")
    inds = inds.reshape(n_t, -1) - np.arange(n_t)[:, None] * n
    q = np.where(inds < n, np.take_along_axis(pr, np.minimum(inds, n - 1), axis=1), 0.0)
    return q, rc_last


def _summaries(buckets: Sequence[Bucket], flat: _Flat, precision: np.ndarray, recall: np.ndarray,
               max_dets: tuple[int, ...]) -> list[BucketScores]:
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))

    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    counted = flat.gt_counts
    out = []
    for b, bucket in enumerate(buckets):
        p = precision[b, ..., -1]
        out.append(BucketScores(bucket=bucket, n_gt=int(counted[b].sum()), ap=mean(p), ap50=mean(p[t50]),
                                ap75=mean(p[t75]),
                                ar={m: mean(recall[b, :, :, i]) for i, m in enumerate(max_dets)}))
    return out


def average_results(results: Sequence[SegmentationResult], annotator: str = "each") -> SegmentationResult:
    """Average the scores of the results of several annotator sets (as ``annotator='each'`` does)."""
    first = results[0]
    if len(results) == 1:
        return first
    dropped: dict[str, int] = {}
    for r in results:
        for why, n in r.dropped.items():
            dropped[why] = dropped.get(why, 0) + n
    return SegmentationResult(
        buckets=[_mean_scores([r.buckets[i] for r in results]) for i in range(len(first.buckets))],
        class_aware=first.class_aware, gt_mask=first.gt_mask, annotator=annotator, annotator_sets=len(results),
        max_dets=first.max_dets, n_images=first.n_images, n_predictions=sum(r.n_predictions for r in results),
        dropped=dropped, matches=[m for r in results for m in r.matches])


def _mean_scores(per_pass: list[BucketScores]) -> BucketScores:
    """Average the scores of several annotator sets (values of -1, no ground truth, left out)."""
    if len(per_pass) == 1:
        return per_pass[0]

    def mean(values: list[float]) -> float:
        valid = [v for v in values if v > -1]
        return float(np.mean(valid)) if valid else -1.0

    first = per_pass[0]
    return BucketScores(bucket=first.bucket, n_gt=sum(p.n_gt for p in per_pass),
                        ap=mean([p.ap for p in per_pass]), ap50=mean([p.ap50 for p in per_pass]),
                        ap75=mean([p.ap75 for p in per_pass]),
                        ar={m: mean([p.ar[m] for p in per_pass]) for m in first.ar})


# -- match table -----------------------------------------------------------------------------------------
def _match_rows(annotator: int, flat: _Flat, match: np.ndarray) -> list[MatchRow]:
    """Rows of the per-image match table for the first bucket: every detection, then every missed region."""
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
    counts = flat.gt_counts[0]
    m = match[0]
    pair_key = flat.pair_det * max(len(flat.gt_region), 1) + flat.pair_gt
    sorter = np.argsort(pair_key)

    def status(col: np.ndarray) -> list[str]:
        return ["fp" if g < 0 else ("tp" if counts[g] else "ignored") for g in col]

    s50, s75 = status(m[t50]), status(m[t75])
    hits = np.zeros(m.shape[1], dtype=np.int64)
    t_i, d_i = np.nonzero(m >= 0)
    np.add.at(hits, d_i, counts[m[t_i, d_i]])
    rows = []
    for d in range(len(flat.det_score)):
        g = int(m[t50, d])
        if g >= 0:
            at = sorter[np.searchsorted(pair_key[sorter], d * max(len(flat.gt_region), 1) + g)]
            iou, region = float(flat.pair_iou[at]), flat.gt_region[g]
        else:
            iou, region = float(flat.det_best_iou[d]), None
        rows.append(MatchRow(annotator, flat.det_image[d], flat.categories[flat.det_cat[d]], flat.det_entry[d],
                             float(flat.det_score[d]), region, iou, s50[d], s75[d], int(hits[d])))
    found = np.zeros(len(flat.gt_region), dtype=bool)
    found[m[t50][m[t50] >= 0]] = True
    for g in np.flatnonzero(~found & counts):
        rows.append(MatchRow(annotator, flat.gt_image[g], flat.categories[flat.gt_cat[g]], None, None,
                             flat.gt_region[g], 0.0, "missed", "missed", 0))
    return rows
