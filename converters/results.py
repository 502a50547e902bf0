"""The COCO results format (a JSON list of detections) and prediction shards, read into and written from
:class:`amodaldata.evaluation.predictions.Prediction` objects: what ``amodaldata eval`` scores and what
``python -m models.predict`` writes.

Each entry holds ``image_id``, ``segmentation`` (the predicted amodal mask, COCO RLE or polygons), ``score``,
and optionally ``category_id``, ``visible`` (or ``visible_mask``: the predicted visible part, RLE or
polygons), ``occluded`` (the predicted occluded part, same encodings), ``order`` (the predicted depth rank
within the image, 1 = nearest, as COCOA's ``order``), ``bbox`` (``[x, y, w, h]`` of the amodal mask, written
for other tools and not read) and ``semdist`` (the predicted sem-dist map of the image size, Zhu et al. 2019,
Eq. 1: the path of a ``.npy`` float map relative to the JSON file, or the map inline as :func:`encode_semdist`
writes it). Bad entries raise typed errors naming the file, the image id and the entry's index.

The inline sem-dist encoding is ``{"size": [H, W], "box": [x0, y0, x1, y1], "png": BASE64}``: outside the box
(exclusive ends) the map is 0; inside, a two-channel 8-bit PNG (grey + alpha) holds the visibility level
L = -floor(M) in the grey channel and the amodal confidence C = M - floor(M) quantised to q = round(256 C)
(at most 255) in the alpha channel, so M = q / 256 - L. The levels decode exactly, C to 1/256 (k / 256 is
exact in binary floating point, so a map already on that grid, as :func:`quantise_semdist` makes it, round
trips bit for bit); a few hundred bytes per detection where a float map of the image would take megabytes.

Prediction shards are shards (:mod:`amodaldata.shards`) whose regions are the detections: the amodal mask the
prediction, ``extra["score"]`` its score (1.0 when absent), the given visible mask and ``depth_rank`` the
predicted visible part and order, ``category_id`` the predicted class.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from amodaldata.atomic import atomic_path
from amodaldata.errors import AmodalDataError, AnnotationError, GeometryError
from amodaldata.evaluation.predictions import Prediction, PredictionSet, image_key, image_sizes
from amodaldata.masks import Mask
from amodaldata.scene import Scene

__all__ = ["SEMDIST_STEPS", "as_results", "decode_semdist", "encode_semdist", "predictions_from_scenes",
           "quantise_semdist", "read_results", "results_entry", "results_from_entries", "write_results"]

#: Steps per unit of the quantised amodal confidence of an inline sem-dist map (module docstring).
SEMDIST_STEPS = 256


# -- the inline sem-dist encoding ---------------------------------------------------------------------------
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


def _inline_semdist(encoded: Mapping[str, Any]) -> Callable[[], np.ndarray]:
    """A loader of an inline map, decoded when it is used (a float map per detection would not fit)."""

    def load() -> np.ndarray:
        try:
            return decode_semdist(encoded)
        except ValueError as exc:
            raise AnnotationError(f"bad inline sem-dist map: {exc}") from None

    return load


def _semdist_file(path: Path) -> Callable[[], np.ndarray]:
    """A loader of a ``.npy`` map, read when it is used."""

    def load() -> np.ndarray:
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AnnotationError(f"cannot read sem-dist map: {exc}", file=str(path)) from None

    return load


# -- reading ------------------------------------------------------------------------------------------------
def read_results(path: str | Path, sizes: Mapping[str, tuple[int, int]] | Iterable[Scene]) -> PredictionSet:
    """Read a COCO results JSON file, or prediction shards (a ``.parquet`` file or a folder of them).

    ``sizes`` gives the ground truth's images: its scenes, or a map of image keys
    (:func:`~amodaldata.evaluation.predictions.image_key`) to ``(height, width)``
    (:func:`~amodaldata.evaluation.predictions.image_sizes`); entries for other images are not read (as the
    official COCOA API filters them) but counted in :attr:`PredictionSet.unknown_images`.
    """
    if not isinstance(sizes, Mapping):
        sizes = image_sizes(list(sizes))
    path = Path(path)
    if path.is_dir() or path.suffix == ".parquet":
        from amodaldata.shards import read_shards

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
    return results_from_entries(data, sizes, file=str(path), base=path.parent)


def results_from_entries(entries: list[Any], sizes: Mapping[str, tuple[int, int]], *,
                         file: str | None = None, base: Path | None = None) -> PredictionSet:
    """Validate already-parsed result entries (see :func:`read_results`); ``base`` is the folder sem-dist
    map paths are relative to."""
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
    """Predictions held as Scenes (prediction shards, module docstring), for the images ``sizes`` names."""
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
                                  order=region.depth_rank, index=index))
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
    semdist: Callable[[], np.ndarray] | None = None
    encoded = _field(entry, "semdist", (str, dict))
    if isinstance(encoded, dict):
        if encoded.get("size") != list(size):
            raise AnnotationError(f"inline sem-dist map has size {encoded.get('size')}, the image {list(size)}")
        semdist = _inline_semdist(encoded)
    elif encoded is not None:
        file = (base / encoded) if base is not None else Path(encoded)
        if not file.is_file():
            raise AnnotationError(f"sem-dist map {file} not found")
        semdist = _semdist_file(file)
    return Prediction(image_id=image_id, mask=mask, score=score, category_id=category_id, visible=visible,
                      occluded=occluded, order=order, semdist=semdist, index=index)


# -- writing ------------------------------------------------------------------------------------------------
def results_entry(prediction: Prediction) -> dict[str, Any]:
    """The results entry of one prediction (module docstring): masks as COCO compressed RLE, the sem-dist map
    inline; fields the prediction lacks are left out."""
    mask = prediction.mask
    entry: dict[str, Any] = {"image_id": prediction.image_id}
    if prediction.category_id is not None:
        entry["category_id"] = prediction.category_id
    entry["segmentation"] = mask.to_rle()
    for key in ("visible", "occluded"):
        part = getattr(prediction, key)
        if part is not None:
            entry[key] = part.to_rle()
    entry["score"] = prediction.score
    entry["bbox"] = [float(v) for v in mask.bbox()]
    if prediction.order is not None:
        entry["order"] = prediction.order
    if prediction.semdist is not None:
        entry["semdist"] = encode_semdist(prediction.load_semdist())
    return entry


def as_results(predictions: Iterable[Prediction]) -> list[dict[str, Any]]:
    """The results entries of ``predictions``, in their order."""
    return [results_entry(p) for p in predictions]


def write_results(predictions: Iterable[Prediction] | Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write predictions (or entries already made by :func:`as_results`) as a COCO results JSON file,
    atomically; return the path."""
    path = Path(path)
    entries = [p if isinstance(p, dict) else results_entry(p) for p in predictions]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(entries))
    return path
