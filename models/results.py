"""Model outputs: the :class:`Detections` of one image, as evaluation predictions and as the COCO results
entries of :mod:`converters.results` that ``amodaldata eval`` reads (amodal ``segmentation``, ``visible`` and
``occluded`` masks as RLE at the original image size, ``score``, ``category_id``, ``bbox``; models that predict
a sem-dist map per instance, SLN, add it inline, which ``amodaldata eval order --source semdist`` reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amodaldata.evaluation.predictions import Prediction
from amodaldata.masks import Mask
from converters.results import as_results


@dataclass
class Detections:
    """The instances predicted in one image, at its original size: bool masks ``(H, W)`` per instance.

    The visible part is clipped to the amodal mask. The occluded part is the model's own where it predicts
    one (the jigsaw ARCNN), else the amodal mask minus the visible one. ``semdist`` holds a float sem-dist map
    ``(H, W)`` per instance for the models that predict one (SLN), else stays empty."""

    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    amodal: list[np.ndarray] = field(default_factory=list)
    visible: list[np.ndarray] = field(default_factory=list)
    occluded: list[np.ndarray] = field(default_factory=list)
    semdist: list[np.ndarray] = field(default_factory=list)

    def add(self, score: float, label: int, amodal: np.ndarray, visible: np.ndarray,
            occluded: np.ndarray | None = None, semdist: np.ndarray | None = None) -> None:
        """Append one instance (every instance of one image with a sem-dist map, or none)."""
        if len(self.semdist) != (len(self.scores) if semdist is not None else 0):
            raise ValueError("either every detection of an image has a sem-dist map or none has")
        self.scores.append(float(score))
        self.labels.append(int(label))
        self.amodal.append(amodal)
        self.visible.append(visible & amodal)
        self.occluded.append(occluded if occluded is not None else amodal & ~visible)
        if semdist is not None:
            self.semdist.append(semdist)

    @classmethod
    def from_arrays(cls, scores: np.ndarray, labels: np.ndarray, amodal: np.ndarray, visible: np.ndarray,
                    occluded: np.ndarray | None = None) -> "Detections":
        """From ``(N,)`` scores and labels and ``(N, H, W)`` bool masks."""
        det = cls()
        for i in range(len(scores)):
            det.add(scores[i], labels[i], amodal[i], visible[i], None if occluded is None else occluded[i])
        return det

    def __len__(self) -> int:
        return len(self.scores)

    def predictions(self, image_id: Any) -> list[Prediction]:
        """The detections with a non-empty amodal mask, as predictions of image ``image_id``."""
        out = []
        maps = self.semdist or [None] * len(self)
        for score, label, amodal, visible, occluded, semdist in zip(self.scores, self.labels, self.amodal,
                                                                    self.visible, self.occluded, maps):
            mask = Mask.from_bitmap(amodal)
            if mask.area() > 0:
                out.append(Prediction(image_id, mask.compact(), score, label, Mask.from_bitmap(visible).compact(),
                                      Mask.from_bitmap(occluded).compact(), semdist=semdist))
        return out


def coco_results(image_id: Any, detections: Detections) -> list[dict[str, Any]]:
    """The COCO results entries of one image's detections (:func:`converters.results.results_entry`; empty
    amodal masks are left out)."""
    return as_results(detections.predictions(image_id))
