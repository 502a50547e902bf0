"""Predictions to score: COCO results JSON (a list of detections), read into :class:`Prediction` objects.

Each entry holds ``image_id``, ``segmentation`` (the predicted amodal mask, COCO RLE or polygons), ``score``,
and optionally ``category_id``, ``visible`` (or ``visible_mask``: the predicted visible part, RLE or
polygons), ``occluded`` (the predicted occluded part, same encodings), ``order`` (the predicted depth rank within the image, 1 = nearest, as COCOA's ``order``) and
``semdist`` (the predicted sem-dist map of the image size, SLN Eq. 1: the path of a ``.npy`` float map relative
to the JSON file, or the map inline as :func:`encode_semdist` writes it).
Bad entries raise typed errors naming the file, the image id and the entry's index.

The inline sem-dist encoding is ``{"size": [H, W], "box": [x0, y0, x1, y1], "png": BASE64}``: outside the box
(exclusive ends) the map is 0; inside, a two-channel 8-bit PNG (grey + alpha) holds the visibility level
L = -floor(M) in the grey channel and the amodal confidence C = M - floor(M) quantised to q = round(256 C)
(at most 255) in the alpha channel, so M = q / 256 - L. The levels decode exactly, C to 1/256 (k / 256 is
exact in binary floating point, so a map already on that grid, as :func:`quantise_semdist` makes it, round
trips bit for bit); a few hundred bytes per detection where a float map of the image would take megabytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Literal, Mapping, Sequence

import numpy as np

from ..errors import AmodalDataError, AnnotationError, GeometryError
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
        semdist: the predicted sem-dist map: a ``.npy`` path, the inline encoding (:func:`encode_semdist`),
            a float array of the image size, or None.
        index: position of the entry in its file (for error messages and the per-image CSV).
    """

    image_id: Hashable
    mask: Mask
    score: float
    category_id: int | None = None
    visible: Mask | None = None
    occluded: Mask | None = None
    order: int | None = None
    semdist: Path | dict[str, Any] | np.ndarray | None = None
    index: int = 0

    def load_semdist(self) -> np.ndarray:
        """The sem-dist map as a float array ``(H, W)``; raises :class:`AnnotationError` when unreadable."""
        if self.semdist is None:
            raise AnnotationError("prediction has no 'semdist' map", image_id=self.image_id,
                                  annotation_id=f"entry {self.index}")
        if isinstance(self.semdist, dict):
            try:
                arr = decode_semdist(self.semdist)
            except ValueError as exc:
                raise AnnotationError(f"bad inline sem-dist map: {exc}", image_id=self.image_id,
                                      annotation_id=f"entry {self.index}") from None
        elif isinstance(self.semdist, np.ndarray):
            arr = self.semdist
        else:
            try:
                arr = np.load(self.semdist, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise AnnotationError(f"cannot read sem-dist map: {exc}", file=str(self.semdist),
                                      image_id=self.image_id, annotation_id=f"entry {self.index}") from None
        if arr.shape != self.mask.size or not np.issubdtype(arr.dtype, np.floating):
            raise AnnotationError(f"sem-dist map must be a float array of shape {self.mask.size}, got "
                                  f"{arr.dtype} {arr.shape}", file=str(self.semdist), image_id=self.image_id,
                                  annotation_id=f"entry {self.index}")
        return arr


#: Steps per unit of the quantised amodal confidence of an inline sem-dist map (module docstring).
SEMDIST_STEPS = 256


def quantise_semdist(semdist: np.ndarray) -> np.ndarray:
    """The sem-dist map on the grid of the inline encoding, float32: the level L = -floor(M) kept, the
    confidence M - floor(M) rounded to a multiple of 1/256 below 1 (what :func:`decode_semdist` gives back)."""
    m = np.asarray(semdist, dtype=np.float32)
    floor = np.floor(m)
    q = np.minimum(np.rint((m - floor) * SEMDIST_STEPS), SEMDIST_STEPS - 1)
    return (q / np.float32(SEMDIST_STEPS) + floor).astype(np.float32)


def encode_semdist(semdist: np.ndarray) -> dict[str, Any]:
    """A sem-dist map ``(H, W)`` as the inline JSON encoding of the module docstring (quantised as
    :func:`quantise_semdist`); levels must lie in 0..255."""
    m = np.asarray(semdist, dtype=np.float32)
    if m.ndim != 2 or not np.isfinite(m).all():
        raise ValueError(f"a sem-dist map must be a finite 2-d array, got shape {m.shape}")
    floor = np.floor(m)
    level = -floor
    if level.min(initial=0) < 0 or level.max(initial=0) > 255:
        raise ValueError("sem-dist levels must lie in 0..255 (M in (-256, 1))")
    q = np.minimum(np.rint((m - floor) * SEMDIST_STEPS), SEMDIST_STEPS - 1).astype(np.uint8)
    level = level.astype(np.uint8)
    h, w = m.shape
    ys, xs = np.nonzero(q | level)
    if len(ys) == 0:
        return {"size": [h, w], "box": [0, 0, 0, 0], "png": ""}
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.stack([level[y0:y1, x0:x1], q[y0:y1, x0:x1]], axis=-1), mode="LA").save(buf, format="PNG")
    return {"size": [h, w], "box": [x0, y0, x1, y1], "png": base64.b64encode(buf.getvalue()).decode("ascii")}


def decode_semdist(encoded: Mapping[str, Any]) -> np.ndarray:
    """The float32 sem-dist map of an inline encoding (:func:`encode_semdist`); ValueError when malformed."""
    size, box, png = encoded.get("size"), encoded.get("box"), encoded.get("png")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size)
            or not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int) for v in box)
            or not isinstance(png, str)):
        raise ValueError("expected {'size': [H, W], 'box': [x0, y0, x1, y1], 'png': base64 text}")
    h, w = size
    x0, y0, x1, y1 = box
    out = np.zeros((h, w), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box {box} lies outside the {h}x{w} map")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(png, validate=True))) as im:
            arr = np.asarray(im.convert("LA") if im.mode != "LA" else im)
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"'png' is not a base64 PNG ({exc})") from None
    if arr.shape != (y1 - y0, x1 - x0, 2):
        raise ValueError(f"PNG of {arr.shape[1]}x{arr.shape[0]} does not fill box {box}")
    out[y0:y1, x0:x1] = arr[..., 1] / np.float32(SEMDIST_STEPS) - arr[..., 0].astype(np.float32)
    return out


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


def read_predictions(path: str | Path, sizes: Mapping[str, tuple[int, int]]) -> PredictionSet:
    """Read a COCO results JSON file, or prediction shards (a ``.parquet`` file or a folder of them, see
    :func:`predictions_from_scenes`).

    ``sizes`` maps image keys (:func:`image_key`) to ``(height, width)``; entries for other images are not
    read (as the official COCOA API filters them) but counted in :attr:`PredictionSet.unknown_images`.
    """
    path = Path(path)
    if path.is_dir() or path.suffix == ".parquet":
        from ..shards import read_shards

        return predictions_from_scenes(read_shards(path), sizes, file=str(path))
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise AnnotationError("no such file", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                              file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise AnnotationError("a results file must be a JSON list of detections (or an object with an "
                              "'annotations' list)", file=str(path))
    return predictions_from_entries(data, sizes, file=str(path), base=path.parent)


def predictions_from_entries(entries: list[Any], sizes: Mapping[str, tuple[int, int]], *,
                             file: str | None = None, base: Path | None = None) -> PredictionSet:
    """Validate already-parsed result entries (see :func:`read_predictions`)."""
    out: list[Prediction] = []
    unknown: dict[str, int] = {}
    for index, entry in enumerate(entries):
        image_id = entry.get("image_id") if isinstance(entry, dict) else None
        try:
            if not isinstance(entry, dict):
                raise AnnotationError(f"a detection must be a JSON object, got {type(entry).__name__}")
            image_id = _field(entry, "image_id", (int, str), required=True)
            key = image_key(image_id)
            if key not in sizes:
                unknown[key] = unknown.get(key, 0) + 1
                continue
            out.append(_prediction(entry, index, image_id, sizes[key], base))
        except AmodalDataError as err:
            raise err.located(file=file, image_id=image_id, annotation_id=f"entry {index}")
    return PredictionSet(out, unknown, file)


def predictions_from_scenes(scenes: Iterable[Scene], sizes: Mapping[str, tuple[int, int]], *,
                            file: str | None = None) -> PredictionSet:
    """Predictions held as Scenes (prediction shards): each region is one detection, its amodal mask the
    prediction, ``extra["score"]`` its score (1.0 when absent), its given visible mask and ``depth_rank`` the
    predicted visible part and order, ``category_id`` the predicted class."""
    out: list[Prediction] = []
    unknown: dict[str, int] = {}
    index = 0
    for scene in scenes:
        key = image_key(scene.id)
        if key not in sizes:
            unknown[key] = unknown.get(key, 0) + len(scene.regions)
            index += len(scene.regions)
            continue
        if (scene.height, scene.width) != tuple(sizes[key]):
            raise GeometryError(f"prediction scene is {scene.height}x{scene.width}, the ground truth "
                                f"{sizes[key][0]}x{sizes[key][1]}", file=file, image_id=scene.id)
        for region in scene.regions:
            score = region.extra.get("score", 1.0)
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
                raise AnnotationError(f"'score' must be a finite number, got {score!r}", file=file,
                                      image_id=scene.id, region_id=region.id)
            out.append(Prediction(scene.id, region.amodal, float(score), region.category_id, region.visible,
                                  region.depth_rank, None, index))
            index += 1
    return PredictionSet(out, unknown, file)


def _field(entry: dict, key: str, types: tuple[type, ...], *, required: bool = False) -> Any:
    if key not in entry or entry[key] is None:
        if required:
            raise AnnotationError(f"detection has no '{key}' field")
        return None
    value = entry[key]
    if not isinstance(value, types) or isinstance(value, bool):
        names = "/".join(t.__name__ for t in types)
        raise AnnotationError(f"detection field '{key}' must be {names}, got {type(value).__name__}")
    return value


def _mask(entry: dict, key: str, size: tuple[int, int]) -> Mask:
    try:
        return Mask.from_segmentation(entry[key], *size)
    except GeometryError as err:
        err.message = f"'{key}': {err.message}"
        raise err


def _prediction(entry: dict, index: int, image_id: Any, size: tuple[int, int], base: Path | None) -> Prediction:
    _field(entry, "segmentation", (dict, list), required=True)
    mask = _mask(entry, "segmentation", size)
    score = float(_field(entry, "score", (int, float), required=True))
    if not math.isfinite(score):
        raise AnnotationError(f"detection score must be finite, got {score}")
    category_id = _field(entry, "category_id", (int,))
    visible_key = "visible" if entry.get("visible") is not None else "visible_mask"
    visible = _mask(entry, visible_key, size) if entry.get(visible_key) is not None else None
    occluded = _mask(entry, "occluded", size) if entry.get("occluded") is not None else None
    order = _field(entry, "order", (int,))
    if order is not None and order < 1:
        raise AnnotationError(f"detection 'order' must be a positive rank (1 = nearest), got {order}")
    semdist = _field(entry, "semdist", (str, dict))
    if isinstance(semdist, dict):
        if semdist.get("size") != list(size):
            raise AnnotationError(f"inline sem-dist map has size {semdist.get('size')}, the image {list(size)}")
    elif semdist is not None:
        semdist = (base / semdist) if base is not None else Path(semdist)
        if not semdist.is_file():
            raise AnnotationError(f"sem-dist map {semdist} not found")
    return Prediction(image_id=image_id, mask=mask, score=score, category_id=category_id, visible=visible,
                      occluded=occluded, order=order, semdist=semdist, index=index)


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
