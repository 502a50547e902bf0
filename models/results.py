"""Model outputs in the COCO results layout that ``amodaldata eval`` reads.

One record per detected instance: ``image_id``, ``category_id``, ``segmentation`` (the amodal mask as COCO
compressed RLE at the original image size), ``visible`` and ``occluded`` (the predicted visible and
occluded parts, same encoding), ``score``, and ``bbox`` (``[x, y, w, h]`` of the amodal mask); models that
predict a sem-dist map per instance (SLN) add ``semdist``, the map inline
(:func:`amodaldata.evaluation.predictions.encode_semdist`: levels exact, confidence to 1/256), which
``amodaldata eval order --source semdist`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amodaldata.evaluation.predictions import encode_semdist
from amodaldata.masks import Mask


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


def coco_results(image_id: Any, detections: Detections) -> list[dict[str, Any]]:
    """The COCO result records of one image's detections (empty amodal masks are left out)."""
    out = []
    maps = detections.semdist or [None] * len(detections)
    for score, label, amodal, visible, occluded, semdist in zip(detections.scores, detections.labels,
                                                                detections.amodal, detections.visible,
                                                                detections.occluded, maps):
        mask = Mask.from_bitmap(amodal)
        if mask.area() == 0:
            continue
        record = {
            "image_id": image_id,
            "category_id": label,
            "segmentation": mask.to_rle(),
            "visible": Mask.from_bitmap(visible).to_rle(),
            "occluded": Mask.from_bitmap(occluded).to_rle(),
            "score": score,
            "bbox": [float(v) for v in mask.bbox()],
        }
        if semdist is not None:
            record["semdist"] = encode_semdist(semdist)
        out.append(record)
    return out
