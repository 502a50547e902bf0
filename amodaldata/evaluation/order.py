"""Pairwise depth order (Zhu et al. 2017, Sec. 5.2): for every pair of overlapping ground-truth regions,
is the right one predicted in front?

Ground-truth pairs are the regions whose amodal masks share a pixel; the truth is their position in the
scene's front-to-back order (the layer stack's). Each ground-truth region is matched one-to-one to the
prediction of best IoU >= ``iou_threshold`` (pairs taken by decreasing IoU). The predicted order comes from
the predictions' explicit ``order`` ranks, or is derived from their amodal + visible masks
(:meth:`OcclusionOrder.from_masks`), or from their sem-dist maps (SLN Eq. 4-5, the sign held by more pixels
of the overlap decides: :func:`amodaldata.targets.depth_order_from_semdist`).

Scores: accuracy over the recalled pairs (both regions matched; an undecided prediction counts as wrong),
the fraction of pairs recalled, and correct / all pairs (the official API's "order AR"). Baselines on the
ground-truth masks themselves: the smaller amodal area in front; the region reaching lower in the image in
front; and the ground truth fed through the whole pipeline as predictions (a self-check: accuracy 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
from pycocotools import mask as cocomask

from ..errors import AnnotationError
from ..masks import Mask
from ..order import OcclusionOrder
from ..scene import Region, Scene
from ..targets import depth_order_from_semdist
from .groundtruth import Annotator, annotator_passes, front_to_back, sort_key
from .predictions import Prediction, PredictionSet, group_by_image

Source = Literal["auto", "order", "masks", "semdist"]
#: Relation of a pair (a, b): +1 when a is in front, -1 when b is, 0 when undecided.
Relation = Callable[[int, int], int]


@dataclass
class PairScore:
    """Counts over ground-truth pairs for one way of ordering them."""

    name: str
    pairs: int = 0
    recalled: int = 0
    correct: int = 0
    undecided: int = 0

    @property
    def accuracy(self) -> float:
        """Correct / recalled pairs (-1 when none is recalled)."""
        return self.correct / self.recalled if self.recalled else -1.0

    @property
    def recall(self) -> float:
        """Recalled / all pairs (-1 without pairs)."""
        return self.recalled / self.pairs if self.pairs else -1.0

    @property
    def correct_fraction(self) -> float:
        """Correct / all pairs: the official API's order recall (-1 without pairs)."""
        return self.correct / self.pairs if self.pairs else -1.0

    def add(self, verdict: str) -> None:
        self.pairs += 1
        if verdict != "unrecalled":
            self.recalled += 1
        self.correct += verdict == "correct"
        self.undecided += verdict == "undecided"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pairs": self.pairs, "recalled": self.recalled, "correct": self.correct,
                "undecided": self.undecided, "accuracy": self.accuracy, "recall": self.recall,
                "correct_fraction": self.correct_fraction}


@dataclass
class PairRow:
    """One ground-truth pair: who is in front, which predictions matched, and the verdict."""

    annotator: int
    image_id: Any
    front: int
    back: int
    front_prediction: int | None
    back_prediction: int | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OrderResult:
    """The model's pair score, the baselines', and every pair."""

    source: str
    iou_threshold: float
    annotator: str
    annotator_sets: int
    n_images: int
    model: PairScore
    baselines: list[PairScore]
    pairs: list[PairRow] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": {"source": self.source, "iou_threshold": self.iou_threshold,
                             "annotator": self.annotator, "annotator_sets": self.annotator_sets,
                             "pairs": "every pair of overlapping ground-truth amodal masks"},
                "images": self.n_images, "dropped": self.dropped, "model": self.model.to_dict(),
                "baselines": [b.to_dict() for b in self.baselines]}


def evaluate_order(scenes: Iterable[Scene], predictions: PredictionSet | Sequence[Prediction], *,
                   source: Source = "auto", iou_threshold: float = 0.5, annotator: Annotator = "first",
                   keep_pairs: bool = True) -> OrderResult:
    """Score the predicted depth order of ``predictions`` on the overlapping ground-truth pairs of ``scenes``.

    With ``annotator='each'`` the pairs of every annotator set are pooled.
    """
    passes = annotator_passes(scenes, annotator)
    by_image, dropped = group_by_image(predictions, passes)
    known = set().union(*passes) if passes else set()
    used = [p for key, preds in by_image.items() if key in known for p in preds]
    source = _choose_source(used, source)

    model = PairScore(f"predictions ({source})")
    area, lower, self_check = (PairScore("smaller area in front"), PairScore("lower in the image in front"),
                               PairScore("ground truth as input"))
    rows: list[PairRow] = []
    for j, gt in enumerate(passes):
        for key in sorted(gt, key=lambda k: sort_key(gt[k].id)):
            scene = gt[key]
            pairs = overlapping_pairs(scene)
            if not pairs:
                continue
            verdicts = _score_image(scene, pairs, by_image.get(key, []), source, iou_threshold)
            for (front, back), (verdict, pf, pb) in zip(pairs, verdicts):
                model.add(verdict)
                if keep_pairs:
                    rows.append(PairRow(j, scene.id, front, back, pf, pb, verdict))
            for score, relation in ((area, _smaller_area(scene)), (lower, _lower_in_image(scene))):
                for front, back in pairs:
                    score.add(_verdict(relation(front, back)))
            for verdict, _, _ in _score_image(scene, pairs, ground_truth_predictions(scene), "order",
                                              iou_threshold):
                self_check.add(verdict)
    return OrderResult(source=source, iou_threshold=iou_threshold, annotator=annotator,
                       annotator_sets=len(passes), n_images=len(passes[0]) if passes else 0, model=model,
                       baselines=[area, lower, self_check], pairs=rows, dropped=dropped)


def overlapping_pairs(scene: Scene) -> list[tuple[int, int]]:
    """``(front, back)`` region ids of every pair whose amodal masks overlap, front by the scene's order."""
    if len(scene.regions) < 2:
        return []
    rles = [r.amodal.to_pycocotools() for r in scene.regions]
    iou = np.asarray(cocomask.iou(rles, rles, [0] * len(rles)), dtype=float).reshape(len(rles), len(rles))
    position = {rid: i for i, rid in enumerate(front_to_back(scene))}
    ids = [r.id for r in scene.regions]
    out = []
    for a, b in zip(*np.nonzero(np.triu(iou > 0, k=1))):
        ra, rb = ids[a], ids[b]
        out.append((ra, rb) if position[ra] < position[rb] else (rb, ra))
    return out


def ground_truth_predictions(scene: Scene) -> list[Prediction]:
    """The scene's regions as predictions: amodal mask, score 1, depth rank from the front-to-back order."""
    rank = {rid: i + 1 for i, rid in enumerate(front_to_back(scene))}
    return [Prediction(scene.id, r.amodal, 1.0, category_id=r.category_id, order=rank[r.id], index=i)
            for i, r in enumerate(scene.regions)]


def match_regions(scene: Scene, predictions: Sequence[Prediction], iou_threshold: float) -> dict[int, int]:
    """One-to-one ``{region id: prediction position}``: candidate pairs with IoU >= threshold taken by
    decreasing IoU (ties in region, then prediction order)."""
    if not predictions or not scene.regions:
        return {}
    iou = np.asarray(cocomask.iou([p.mask.to_pycocotools() for p in predictions],
                                  [r.amodal.to_pycocotools() for r in scene.regions],
                                  [0] * len(scene.regions)), dtype=float).reshape(len(predictions), -1)
    d, g = np.nonzero(iou >= iou_threshold)
    order = np.lexsort((d, g, -iou[d, g]))
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for i in order:
        rid = scene.regions[g[i]].id
        if rid not in matched and d[i] not in taken:
            matched[rid] = int(d[i])
            taken.add(int(d[i]))
    return matched


def _choose_source(predictions: Sequence[Prediction], source: Source) -> str:
    if source != "auto":
        if source not in ("order", "masks", "semdist"):
            raise ValueError(f"source must be auto, order, masks or semdist, not {source!r}")
        return source
    for name, has in (("order", lambda p: p.order is not None), ("masks", lambda p: p.visible is not None),
                      ("semdist", lambda p: p.semdist is not None)):
        if predictions and all(has(p) for p in predictions):
            return name
    raise AnnotationError("the predictions carry no depth order: give every detection an 'order' rank, a "
                          "'visible' mask or a 'semdist' map")


def _score_image(scene: Scene, pairs: list[tuple[int, int]], preds: Sequence[Prediction], source: str,
                 iou_threshold: float) -> list[tuple[str, int | None, int | None]]:
    """The verdict of every pair, with the matched predictions' entry indices."""
    matched = match_regions(scene, preds, iou_threshold)
    relation = _relation(source, [preds[i] for i in matched.values()])
    slot = {rid: k for k, rid in enumerate(matched)}
    out = []
    for front, back in pairs:
        if front in matched and back in matched:
            verdict = _verdict(relation(slot[front], slot[back]))
            out.append((verdict, preds[matched[front]].index, preds[matched[back]].index))
        else:
            out.append(("unrecalled", preds[matched[front]].index if front in matched else None,
                        preds[matched[back]].index if back in matched else None))
    return out


def _verdict(relation: int) -> str:
    return "correct" if relation > 0 else ("wrong" if relation < 0 else "undecided")


def _relation(source: str, preds: list[Prediction]) -> Relation:
    """How two matched predictions (by position in ``preds``) are ordered."""
    if source == "order":
        for p in preds:
            if p.order is None:
                raise AnnotationError("detection has no 'order' rank", image_id=p.image_id,
                                      annotation_id=f"entry {p.index}")
        return lambda a, b: int(np.sign(preds[b].order - preds[a].order))
    if source == "masks":
        for p in preds:
            if p.visible is None:
                raise AnnotationError("detection has no 'visible' mask to derive the order from",
                                      image_id=p.image_id, annotation_id=f"entry {p.index}")
        graph = OcclusionOrder.from_masks([Region(k + 1, p.mask, visible=p.visible) for k, p in enumerate(preds)])
        return lambda a, b: int(graph.in_front(a + 1, b + 1)) - int(graph.in_front(b + 1, a + 1))
    maps = [p.load_semdist() for p in preds]
    return lambda a, b: depth_order_from_semdist(maps[a], maps[b])


def _smaller_area(scene: Scene) -> Relation:
    area = {r.id: r.amodal.area() for r in scene.regions}
    return lambda a, b: int(np.sign(area[b] - area[a]))


def _lower_in_image(scene: Scene) -> Relation:
    bottom = {r.id: _bottom(r.amodal) for r in scene.regions}
    return lambda a, b: int(np.sign(bottom[a] - bottom[b]))


def _bottom(mask: Mask) -> float:
    """The lowest pixel row the mask reaches, plus one (y + h of its pixel bounding box)."""
    _, y, _, h = cocomask.toBbox(mask.to_pycocotools())
    return float(y + h)
