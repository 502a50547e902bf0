"""The layered ground-truth oracle (Liu et al. 2019, Sec. 5 and Table 2): how good can instance masks be
when only the first K layers of the scene are known?

Each region's mask is rebuilt from the first K slices of the layer stack (its pixels at visibility level
L < K; K = 1 gives the visible masks) and scored against the full amodal ground truth with the segmentation
metrics of :mod:`.segmentation`. The rebuilt mask lies inside the amodal one, so its IoU with its own region
is the recovered fraction |L < K| / |amodal|, used as the oracle's confidence (an oracle ranks its best masks
first); a region with nothing left in the first K layers gives no prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..masks import Mask
from ..scene import Scene
from .groundtruth import Annotator, annotator_passes
from .predictions import Prediction
from .segmentation import MAX_DETS, MIN_OCCLUSION, SegmentationResult, average_results, evaluate_segmentation

#: The K of Liu et al.'s (2019) Table 2 and beyond.
DEFAULT_LAYERS = (1, 2, 3, 4, 5)


@dataclass
class OracleResult:
    """One segmentation result per number of layers K."""

    layers: list[int]
    results: list[SegmentationResult]

    def to_dict(self) -> dict[str, Any]:
        return {"oracle": "instance masks rebuilt from the first K layers of the ground-truth layer stack",
                "layers": [{"K": k, **r.to_dict()} for k, r in zip(self.layers, self.results)]}


def layer_predictions(scene: Scene, layers: int) -> list[Prediction]:
    """Every region's mask from the first ``layers`` slices of the scene's layer stack, as predictions."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    stack = scene.layers
    out = []
    for index, region in enumerate(scene.regions):
        area = stack.area(region.id)
        if stack.max_level(region.id) < layers:
            mask, kept = region.amodal, area
        else:
            level = stack.level_map(region.id)
            kept_pixels = (level >= 0) & (level < layers)
            kept = int(np.count_nonzero(kept_pixels))
            mask = Mask.from_bitmap(kept_pixels)
        if kept == 0:
            continue
        out.append(Prediction(scene.id, mask, kept / area, category_id=region.category_id, index=index))
    return out


def evaluate_oracle(scenes: Iterable[Scene], layers: Sequence[int] = DEFAULT_LAYERS, *, class_aware: bool = False,
                    min_occlusion: float | None = MIN_OCCLUSION, annotator: Annotator = "first",
                    max_dets: Sequence[int] = MAX_DETS) -> OracleResult:
    """Score the K-layer oracle masks against the full amodal ground truth for every K in ``layers``."""
    layers = sorted({int(k) for k in layers})
    if not layers or layers[0] < 1:
        raise ValueError(f"layers must be positive integers, got {layers}")
    passes = annotator_passes(scenes, annotator)
    results = []
    for k in layers:
        per_set = []
        for gt in passes:
            chosen = list(gt.values())
            preds = [p for scene in chosen for p in layer_predictions(scene, k)]
            per_set.append(evaluate_segmentation(chosen, preds, class_aware=class_aware, gt_mask="amodal",
                                                 min_occlusion=min_occlusion, max_dets=max_dets,
                                                 keep_matches=False))
        results.append(average_results(per_set, annotator))
    return OracleResult(layers, results)
