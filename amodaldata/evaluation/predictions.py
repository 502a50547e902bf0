"""Predictions to score, as the evaluation sees them: :class:`Prediction` (one predicted region), the
:class:`PredictionSet` read from one file, and the helpers that group them by image and pick the scored part.

Files of predictions are read and written by :mod:`converters.results` (the COCO results format, and prediction
shards); this module knows no file format.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np

from ..errors import AnnotationError
from ..masks import Mask
from ..scene import Scene


@dataclass(eq=False)
class Prediction:
    """One predicted region of one image.

    Attributes:
        image_id: the image it belongs to (as in the ground truth).
        mask: the predicted amodal mask (the one scored).
        score: confidence; detections are matched and ranked by it.
        category_id: predicted class (class-aware evaluation), or None.
        visible: predicted visible part, or None (used to derive a depth order).
        occluded: predicted occluded part, or None (the amodal minus the visible mask where scored).
        order: predicted depth rank within the image (1 = nearest), or None.
        semdist: the predicted sem-dist map (Zhu et al. 2019, Eq. 1) of the image size: a float array, or a
            function that loads it (a reader keeps maps on disk or encoded until they are used), or None.
        index: position of the entry in its file (for error messages and the per-image CSV).
    """

    image_id: Hashable
    mask: Mask
    score: float
    category_id: int | None = None
    visible: Mask | None = None
    occluded: Mask | None = None
    order: int | None = None
    semdist: np.ndarray | Callable[[], np.ndarray] | None = None
    index: int = 0

    def load_semdist(self) -> np.ndarray:
        """The sem-dist map as a float array ``(H, W)``; raises :class:`AnnotationError` when it is missing,
        unreadable or not of the image size."""
        where = {"image_id": self.image_id, "annotation_id": f"entry {self.index}"}
        if self.semdist is None:
            raise AnnotationError("prediction has no 'semdist' map", **where)
        try:
            arr = self.semdist if isinstance(self.semdist, np.ndarray) else self.semdist()
        except AnnotationError as err:
            raise err.located(**where)
        if arr.shape != self.mask.size or not np.issubdtype(arr.dtype, np.floating):
            raise AnnotationError(f"sem-dist map must be a float array of shape {self.mask.size}, got "
                                  f"{arr.dtype} {arr.shape}", **where)
        return arr


def image_key(image_id: Any) -> str:
    """The key images are matched by: ``str(image_id)``, so ``7`` in a results file finds scene ``"7"``."""
    return str(image_id)


def image_sizes(scenes: list[Scene]) -> dict[str, tuple[int, int]]:
    """``{image key: (height, width)}`` of the ground-truth scenes (what polygons are rasterised at)."""
    return {image_key(s.id): (s.height, s.width) for s in scenes}


@dataclass
class PredictionSet:
    """The predictions read from one file, and the entries left out because the ground truth lacks the image."""

    predictions: list[Prediction]
    unknown_images: dict[str, int]
    file: str | None = None

    @property
    def dropped(self) -> int:
        return sum(self.unknown_images.values())


def group_by_image(predictions: PredictionSet | Sequence[Prediction], passes: list[dict[str, Scene]]
                   ) -> tuple[dict[str, list[Prediction]], dict[str, int]]:
    """Predictions grouped by image key, and the count of those left out because no ground-truth pass
    (:func:`~amodaldata.evaluation.groundtruth.annotator_passes`) has their image."""
    dropped: dict[str, int] = {}
    unknown = 0
    if isinstance(predictions, PredictionSet):
        unknown = predictions.dropped
        predictions = predictions.predictions
    by_image: dict[str, list[Prediction]] = {}
    for pred in predictions:
        by_image.setdefault(image_key(pred.image_id), []).append(pred)
    known = set().union(*passes) if passes else set()
    unknown += sum(len(v) for k, v in by_image.items() if k not in known)
    if unknown:
        dropped["predictions for images without ground truth"] = unknown
    return by_image, dropped


#: What a segmentation evaluation scores: the amodal mask, or the visible or occluded part (Yin 2021, Table 1).
Part = Literal["amodal", "visible", "occluded"]


def part_predictions(predictions: PredictionSet | Sequence[Prediction], part: Part
                     ) -> PredictionSet | list[Prediction]:
    """The predictions with ``mask`` replaced by their ``part``: the predicted visible mask, or the predicted
    occluded part (the amodal minus the visible mask where a prediction gives none). A prediction whose part is
    empty predicts nothing of it and is left out; one lacking the visible mask the part needs is an error."""
    if part == "amodal":
        return predictions
    if part not in ("visible", "occluded"):
        raise ValueError(f"part must be 'amodal', 'visible' or 'occluded', not {part!r}")
    items = predictions.predictions if isinstance(predictions, PredictionSet) else list(predictions)
    out = []
    for pred in items:
        mask = pred.occluded if part == "occluded" else pred.visible
        if mask is None:
            if pred.visible is None:
                raise AnnotationError(f"scoring the {part} part needs a 'visible' mask on every prediction",
                                      image_id=pred.image_id, annotation_id=f"entry {pred.index}")
            mask = Mask.from_bitmap(pred.mask.to_bitmap() & ~pred.visible.to_bitmap())
        if mask.area() > 0:
            out.append(dataclasses.replace(pred, mask=mask))
    if isinstance(predictions, PredictionSet):
        return PredictionSet(out, predictions.unknown_images, predictions.file)
    return out
