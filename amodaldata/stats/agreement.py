"""Annotator agreement on multi-annotator data (Zhu et al. Sec. 4, Fig. 8): region and edge consistency.

The annotations of one image are the Scenes sharing its ``Scene.id`` (they differ by ``annotator`` /
``annotation_id``). For every pair of annotations of an image:

- **region consistency** (Sec. 4.1): regions are matched one to one by bipartite matching
  (``scipy.optimize.linear_sum_assignment``) among the pairs with IoU >= 0.5; with one annotation as ground
  truth, P = matches / its partner's regions, R = matches / its own regions and F = 2PR / (P + R). Computed on
  amodal masks and on modal (visible) masks; fully hidden regions have no modal mask and are left out there.
- **edge consistency** (Sec. 4.2): the visible edge maps (:mod:`amodaldata.stats.edges`) are matched pixel to
  pixel, one to one, within a distance of ``tolerance`` times the image diagonal (0.0075, the BSDS benchmark's
  ``maxDist``), by maximum bipartite matching; P, R and F as above.

Each annotation serves as ground truth in turn, giving n(n - 1) scores per image of n annotations; the
matching count does not depend on which side is ground truth, so the F of (A, B) equals that of (B, A) and
each unordered pair is computed once and counted twice.

Streaming: annotations are held (their amodal RLEs and the runs of their visible partition, no rasters) until
``window`` other images have been seen since their image last appeared, then scored and dropped. Readers yield
the annotations of an image together, so every pair is scored; an annotation arriving after its image was
scored is counted in ``late_annotations`` (it is paired only with annotations arriving after it). The image
groups also give the number of annotations per image (Fig. 5a); the one thing kept per image is its id, to
recognise late annotations.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as cocomask
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

from amodaldata.scene import Scene

from .edges import label_edges
from .geometry import SceneGeometry
from .tally import FRACTION_BINS, Histogram, IntCounts

#: IoU a region match needs (Sec. 4.1).
IOU_THRESHOLD = 0.5
#: Edge match distance as a fraction of the image diagonal (the BSDS benchmark's ``maxDist``).
EDGE_TOLERANCE = 0.0075
#: Images held open at once while streaming.
WINDOW = 64
KINDS = ("region_amodal", "region_modal", "edge")


@dataclass(frozen=True, eq=False)
class AnnotationRecord:
    """What agreement needs of one annotation: amodal RLEs of its non-empty regions and the row-major runs
    (value = region id, 0 = none; flat positions ``y * W + x``) of its visible partition."""

    image_id: Any
    height: int
    width: int
    amodal: list[dict]
    values: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, scene: Scene, geometry: SceneGeometry) -> "AnnotationRecord":
        values, _, ends = geometry.labels
        amodal = [r.amodal.to_rle() for r, a in zip(scene.regions, geometry.area) if a > 0]
        small = np.int32 if scene.height * scene.width < 2**31 else np.int64
        return cls(scene.id, scene.height, scene.width, amodal, values, ends.astype(small))

    def compact(self) -> tuple[np.ndarray, int]:
        """The run values renumbered 0 (none), 1..n (the visible regions), and n."""
        present, inverse = np.unique(self.values, return_inverse=True)
        shift = 1 if present.size and present[0] == 0 else 0
        return inverse + 1 - shift, present.size - shift

    def visible_edges(self) -> np.ndarray:
        """``(N, 2)`` (row, column) of the visible edge pixels."""
        lengths = np.diff(self.ends, prepend=0)
        labels = np.repeat(self.values, lengths).reshape(self.height, self.width)
        return np.argwhere(label_edges(labels)).astype(float)


def region_f(iou: np.ndarray, threshold: float = IOU_THRESHOLD) -> float | None:
    """F-measure of a one-to-one matching of ground-truth regions (rows) to other regions (columns) at
    IoU >= ``threshold``; None when both sides are empty."""
    n_gt, n_pred = iou.shape
    if n_gt == 0 and n_pred == 0:
        return None
    if n_gt == 0 or n_pred == 0:
        return 0.0
    valid = (iou >= threshold).astype(float)
    rows, cols = linear_sum_assignment(valid, maximize=True)
    return _f(int(valid[rows, cols].sum()), n_gt, n_pred)


def edge_f(gt: np.ndarray, pred: np.ndarray, max_distance: float) -> float | None:
    """F-measure of a one-to-one matching of edge pixels ``(N, 2)`` within ``max_distance`` pixels (maximum
    bipartite matching, as the BSDS benchmark's ``correspondPixels``); None when both maps are empty."""
    if len(gt) == 0 and len(pred) == 0:
        return None
    if len(gt) == 0 or len(pred) == 0:
        return 0.0
    pairs = cKDTree(gt).sparse_distance_matrix(cKDTree(pred), max_distance, output_type="ndarray")
    graph = csr_matrix((np.ones(len(pairs)), (pairs["i"], pairs["j"])), shape=(len(gt), len(pred)))
    matched = int(np.count_nonzero(maximum_bipartite_matching(graph, perm_type="column") >= 0))
    return _f(matched, len(gt), len(pred))


def _f(matched: int, n_gt: int, n_pred: int) -> float:
    if matched == 0:
        return 0.0
    precision, recall = matched / n_pred, matched / n_gt
    return 2 * precision * recall / (precision + recall)


def amodal_iou(a: AnnotationRecord, b: AnnotationRecord) -> np.ndarray:
    """IoU of every amodal region of ``a`` against every one of ``b`` (pycocotools)."""
    if not a.amodal or not b.amodal:
        return np.zeros((len(a.amodal), len(b.amodal)))
    encode = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in a.amodal + b.amodal]
    iou = cocomask.iou(encode[:len(a.amodal)], encode[len(a.amodal):], [0] * len(b.amodal))
    return np.asarray(iou, dtype=float).reshape(len(a.amodal), len(b.amodal))


def modal_iou(a: AnnotationRecord, b: AnnotationRecord) -> np.ndarray:
    """IoU of every visible region of ``a`` against every one of ``b``, from the runs (no raster)."""
    va, na = a.compact()
    vb, nb = b.compact()
    ends = np.union1d(a.ends, b.ends)
    lengths = np.diff(ends, prepend=0)
    ia = va[np.searchsorted(a.ends, ends, side="left")]
    ib = vb[np.searchsorted(b.ends, ends, side="left")]
    inter = np.bincount(ia * (nb + 1) + ib, weights=lengths, minlength=(na + 1) * (nb + 1)).reshape(na + 1, nb + 1)
    area_a, area_b = inter.sum(axis=1)[1:], inter.sum(axis=0)[1:]
    inter = inter[1:, 1:]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pair_scores(a: AnnotationRecord, b: AnnotationRecord, edges_a: np.ndarray, edges_b: np.ndarray,
                tolerance: float = EDGE_TOLERANCE) -> dict[str, float | None]:
    """Region (amodal, modal) and edge consistency of two annotations of one image."""
    diagonal = float(np.hypot(a.height, a.width))
    return {"region_amodal": region_f(amodal_iou(a, b)), "region_modal": region_f(modal_iou(a, b)),
            "edge": edge_f(edges_a, edges_b, tolerance * diagonal)}


class AgreementTally:
    """Pairwise consistency scores over a dataset, grouping annotations by image id while streaming."""

    def __init__(self, tolerance: float = EDGE_TOLERANCE, window: int = WINDOW) -> None:
        self.tolerance = tolerance
        self.window = window
        self.pending: OrderedDict[Any, list[AnnotationRecord]] = OrderedDict()
        self.scored: set = set()
        self.annotations_per_image = IntCounts()
        self.scores: dict[str, list[float]] = {k: [] for k in KINDS}
        self.images = 0
        self.late = 0
        self.size_mismatch = 0

    def add(self, record: AnnotationRecord) -> None:
        key = record.image_id
        if key in self.pending:
            self.pending[key].append(record)
            self.pending.move_to_end(key)
            return
        if key in self.scored:
            self.late += 1
        self.pending[key] = [record]
        while len(self.pending) > self.window:
            self._score(*self.pending.popitem(last=False))

    def finish(self) -> None:
        """Score every image still held."""
        while self.pending:
            self._score(*self.pending.popitem(last=False))

    def _score(self, image_id: Any, records: list[AnnotationRecord]) -> None:
        self.scored.add(image_id)
        self.annotations_per_image.add(len(records))
        if len(records) < 2:
            return
        if len({(r.height, r.width) for r in records}) > 1:
            self.size_mismatch += 1
            return
        self.images += 1
        edges = [r.visible_edges() for r in records]
        for i in range(len(records)):
            for j in range(i + 1, len(records)):
                for kind, value in pair_scores(records[i], records[j], edges[i], edges[j], self.tolerance).items():
                    if value is not None:
                        self.scores[kind] += [value, value]

    def result(self) -> dict:
        """Per kind: number of scores, median, mean and the Fig. 8 histogram; plus the settings and counts."""
        out: dict[str, Any] = {"images": self.images, "iou_threshold": IOU_THRESHOLD,
                               "edge_tolerance": self.tolerance, "late_annotations": self.late,
                               "images_with_mixed_sizes": self.size_mismatch}
        for kind, values in self.scores.items():
            v = np.asarray(values, dtype=float)
            histogram = Histogram(FRACTION_BINS)
            histogram.add(v)
            out[kind] = {"n": int(v.size), "median": float(np.median(v)) if v.size else None,
                         "mean": float(v.mean()) if v.size else None, "histogram": histogram.result()}
        return out
