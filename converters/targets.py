"""Target formats: ``semdist`` (SLN, Zhang et al. 2019) and ``layered`` (the layered-embedding net, Liu et al.
2020), written from Scenes and read back into Scenes (so model outputs and datasets shipped as targets become
annotations again).

Both write a folder with one compressed ``.npz`` per scene, named ``{image_id}.npz`` (``{image_id}-{annotation
id}.npz`` when an image has several annotations), and ``index.jsonl``: one line per scene with its ``file``,
``image_id``, ``annotation_id``, ``annotator``, ``file_name``, ``height``, ``width`` and ``regions``
(``id``, ``name``, ``category_id``, ``is_stuff``, ``is_crowd``), in the order of the arrays' first axis.

``semdist`` keys (N regions, K stack depth; see :func:`amodaldata.targets.scene_targets`):
``region_ids`` (N,), ``semdist`` float32 (N, H, W) = C - L (SLN Eq. 1, C = ``confidence``), ``amodal`` and
``visible`` bool (N, H, W), ``instance_layering`` uint8 (N, H, W) and ``global_layering`` uint8 (H, W)
(SLN Sec. 4.3-4.4, capped at ``max_level``), ``layer_stack`` int32 (K, H, W), ``occlusion_rate`` (N,),
``order_edges`` (E, 2), and scalars ``confidence`` and ``max_level``.

``layered`` keys: ``classes`` and ``instances`` int32 (``layers``, H, W): the class and the region id of the
k-th nearest object at each pixel (0 = none); ``region_ids`` (N,) and ``region_classes`` (N,).

Reading (:func:`read_semdist`, :func:`read_layered`) needs only the arrays a model would predict plus the
index: sem-dist maps are decoded with SLN Eq. 2-5 (amodal mask: frac(M) > c; the order of two overlapping
regions: the sign of R_AB held by more pixels), layered masks are rebuilt into instances (a region's amodal
mask is where it appears in any of the K layers; layer k in front of layer k + 1). What a target cannot hold
is reported when it is written: polygon vertices (rasters only), depth ranks, unmodelled fields, and for
``layered`` the parts of regions deeper than K layers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from amodaldata.atomic import atomic_files
from amodaldata.errors import AmodalDataError, ErrorPolicy, FormatError, OnError
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.targets import (DECODE_THRESHOLD, GT_CONFIDENCE, amodal_mask, depth_order_from_semdist,
                                layered_masks, region_classes, scene_targets)

from .labels import COCO_TABLE, load_label_map, normalise
from .losses import LossReport, Written


def _scene_stem(scene: Scene, seen: set[str]) -> str:
    """A file name for the scene's arrays: its image id (with the annotation id, then a counter, where that is
    taken), characters other than letters, digits and ``-_.`` replaced by ``_``."""

    def clean(name: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

    stem = clean(str(scene.id))
    if stem in seen and scene.annotation_id is not None:
        stem = clean(f"{scene.id}-{scene.annotation_id}")
    base, n = stem, 1
    while stem in seen:
        n += 1
        stem = f"{base}-{n}"
    seen.add(stem)
    return stem


def _index_record(scene: Scene, file: str) -> dict[str, Any]:
    return {
        "file": file, "image_id": scene.id, "annotation_id": scene.annotation_id, "annotator": scene.annotator,
        "file_name": scene.file_name, "height": scene.height, "width": scene.width,
        "regions": [{"id": r.id, "name": r.name, "category_id": r.category_id, "is_stuff": r.is_stuff,
                     "is_crowd": r.is_crowd} for r in scene.regions],
    }


def _target_losses(scene: Scene, fmt: str, losses: LossReport) -> None:
    """What an index line and raster maps cannot hold."""
    for region in scene.regions:
        if region.amodal.polygons is not None:
            losses.add(f"amodal polygons ({fmt} holds rasters; pixel-exact)", scene.id, region.id)
        if region.depth_rank is not None:
            losses.add(f"depth ranks ({fmt} holds the order as overlaps; read back, ranks are not given)",
                       scene.id, region.id)
        if region.visible is not None:
            losses.add(f"given visible masks ({fmt} holds the visible part the order implies)", scene.id, region.id)
        for key in sorted(region.extra):
            losses.add(f"region fields with no place in {fmt}", scene.id, region.id, detail=key)
    for key in sorted(scene.extra):
        losses.add(f"annotation-level fields with no place in {fmt}", scene.id, detail=key)
    if scene.image_bytes is not None:
        losses.add(f"embedded image bytes ({fmt} names image files, it does not hold them)", scene.id)


def _write_npz_folder(scenes: Iterable[Scene], out: Path, arrays_of: Callable[[Scene], dict[str, np.ndarray]],
                      written: Written, fmt: str, losses: LossReport) -> int:
    """Write one ``.npz`` per scene and the index, all renamed into place together when every scene is written
    (:func:`amodaldata.atomic.atomic_files`): a failure leaves the folder as it was."""
    seen: set[str] = set()
    names: list[Path] = []
    with atomic_files(out) as group:
        with open(group.temporary("index.jsonl"), "w", encoding="utf-8") as index:
            for scene in scenes:
                _target_losses(scene, fmt, losses)
                stem = _scene_stem(scene, seen)
                with open(group.temporary(f"{stem}.npz"), "wb") as arrays:
                    np.savez_compressed(arrays, **arrays_of(scene))
                names.append(out / f"{stem}.npz")
                index.write(json.dumps(_index_record(scene, f"{stem}.npz")) + "\n")
                written.add(len(scene.regions))
        group.publish([out / "index.jsonl", *names])
    return written.scenes


def write_semdist(scenes: Iterable[Scene], out: str | Path, *, max_level: int = 4,
                  confidence: float = GT_CONFIDENCE, losses: LossReport | None = None,
                  written: Written | None = None) -> int:
    """Write sem-dist targets (see the module docstring); return the number of scenes written."""

    def arrays(scene: Scene) -> dict[str, np.ndarray]:
        t = scene_targets(scene, max_level=max_level, layers=1, confidence=confidence)
        del t["layered_classes"], t["layered_instances"]
        return {**t, "confidence": np.float32(confidence), "max_level": np.int32(max_level)}

    return _write_npz_folder(scenes, Path(out), arrays, written if written is not None else Written(), "semdist",
                             losses if losses is not None else LossReport())


def class_ids(label_map: Mapping[str, int | str]) -> dict[str, int]:
    """A label map with integer values: names are looked up among COCO's classes (the built-in ``cocoa-coco``
    map sends COCOA names to them); a name that is not one is a :class:`FormatError` (layered classes are
    integers)."""
    out = {}
    for name, value in label_map.items():
        cid = value if isinstance(value, int) else COCO_TABLE.id_of(value)
        if cid is None:
            raise FormatError(f"label map sends {name!r} to {value!r}: layered masks hold integer classes, give a "
                              f"class id or a COCO class name")
        out[normalise(name)] = cid
    return out


def write_layered(scenes: Iterable[Scene], out: str | Path, *, layers: int = 2,
                  label_map: str | Path | Mapping[str, int | str] | None = None, losses: LossReport | None = None,
                  written: Written | None = None) -> int:
    """Write K-layer masks (see the module docstring); return the number of scenes written.

    A region's class is its ``category_id``, else its name's entry in ``label_map`` (:func:`class_ids`;
    names matched case- and space-insensitively), else 1 (:func:`amodaldata.targets.region_classes`); with a
    label map, the names it lacks are recorded in ``losses``.
    """
    losses = losses if losses is not None else LossReport()
    names = class_ids(load_label_map(label_map)) if label_map is not None else None

    def arrays(scene: Scene) -> dict[str, np.ndarray]:
        classes = region_classes(scene)
        for r in scene.regions:
            if names is None or r.category_id is not None:
                continue
            cid = names.get(normalise(r.name)) if r.name is not None else None
            if cid is None:
                losses.add("regions whose name the label map lacks, written as class 1", scene.id, r.id,
                           detail=repr(r.name.strip()) if r.name is not None else "no name")
            else:
                classes[r.id] = cid
        stack = scene.layers
        for r in scene.regions:
            deepest = stack.max_level(r.id)
            if deepest >= layers:
                hidden = int(np.count_nonzero(stack.levels[r.id] >= layers))
                losses.add(f"regions deeper than the {layers} layers (their pixels behind {layers} others are "
                           f"lost{'; wholly so' if hidden == stack.area(r.id) else ''})", scene.id, r.id,
                           detail="wholly" if hidden == stack.area(r.id) else "partly")
        lm = layered_masks(stack, layers, classes)
        ids = [r.id for r in scene.regions]
        return {"classes": lm.classes, "instances": lm.instances.astype(np.int32),
                "region_ids": np.asarray(ids, dtype=np.int64),
                "region_classes": np.asarray([classes[i] for i in ids], dtype=np.int32)}

    return _write_npz_folder(scenes, Path(out), arrays, written if written is not None else Written(), "layered",
                             losses)


# -- reading --------------------------------------------------------------------------------------------
def _index(folder: Path) -> Iterable[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Each index line of a target folder with the arrays of its ``.npz``."""
    index = folder / "index.jsonl"
    if not index.is_file():
        raise FormatError("not a target folder: no index.jsonl", file=str(folder))
    with open(index, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"line {number} is not JSON: {exc.msg}", file=str(index)) from None
            if not isinstance(record, dict) or not isinstance(record.get("file"), str):
                raise FormatError(f"line {number} has no 'file'", file=str(index))
            path = folder / record["file"]
            try:
                with np.load(path) as data:
                    arrays = {k: data[k] for k in data.files}
            except (OSError, ValueError) as exc:
                raise FormatError(f"cannot read the arrays: {exc}", file=str(path),
                                  image_id=record.get("image_id")) from None
            yield record, arrays


def _target_scene(record: dict[str, Any], masks: dict[int, np.ndarray], edges: set[tuple[int, int]],
                  categories: dict[int, int]) -> Scene:
    """A Scene of an index line: its regions' names, category ids and stuff flags from the index (a region the
    index lacks, as in a model's output, has the class of the arrays as its category id)."""
    meta = {r["id"]: r for r in record.get("regions") or [] if isinstance(r, dict) and "id" in r}
    regions = []
    for rid, bitmap in masks.items():
        info = meta.get(rid, {})
        regions.append(Region(id=rid, amodal=Mask.from_bitmap(bitmap), name=info.get("name"),
                              category_id=info.get("category_id", categories.get(rid)),
                              is_stuff=bool(info.get("is_stuff", False)),
                              is_crowd=bool(info.get("is_crowd", False))))
    h, w = record.get("height"), record.get("width")
    scene = Scene(id=record.get("image_id"), height=h, width=w, regions=regions, order=OcclusionOrder(edges),
                  file_name=record.get("file_name"), annotator=record.get("annotator"),
                  annotation_id=record.get("annotation_id"))
    scene.order.front_to_back([r.id for r in regions])      # refuse cycles while reading
    return scene


def _read_targets(path: str | Path, decode: Callable[[dict[str, Any], dict[str, np.ndarray]], Scene],
                  on_error: OnError | ErrorPolicy) -> Iterable[Scene]:
    policy = on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy(on_error)
    folder = Path(path)
    for record, arrays in _index(folder):
        try:
            yield decode(record, arrays)
        except (KeyError, ValueError) as exc:
            policy.handle(FormatError(f"arrays do not fit the index: {exc}", file=str(folder / record["file"]),
                                      image_id=record.get("image_id")))
        except AmodalDataError as err:
            policy.handle(err.located(file=str(folder / record["file"]), image_id=record.get("image_id")))


#: What each reader needs of a scene's arrays: ``{key: (axes, dtype kind)}``, axes named ``N`` (regions),
#: ``K`` (layers), ``E`` (edges), ``H`` / ``W`` (the index's height and width) or a number; dtype kinds as
#: numpy's (``f`` float, ``i`` / ``u`` integer, ``b`` bool). :mod:`converters.validate_targets` checks them.
READ_ARRAYS: dict[str, dict[str, tuple[tuple[str | int, ...], str]]] = {
    "semdist": {"region_ids": (("N",), "iu"), "semdist": (("N", "H", "W"), "f")},
    "layered": {"instances": (("K", "H", "W"), "iu")},
}
#: The other arrays a writer stores, checked when present.
WRITTEN_ARRAYS: dict[str, dict[str, tuple[tuple[str | int, ...], str]]] = {
    "semdist": {"amodal": (("N", "H", "W"), "b"), "visible": (("N", "H", "W"), "b"),
                "instance_layering": (("N", "H", "W"), "iu"), "global_layering": (("H", "W"), "iu"),
                "layer_stack": (("K", "H", "W"), "iu"), "occlusion_rate": (("N",), "f"),
                "order_edges": (("E", 2), "iu")},
    "layered": {"classes": (("K", "H", "W"), "iu"), "region_ids": (("N",), "iu"), "region_classes": (("N",), "iu")},
}


def decode_semdist_scene(record: dict[str, Any], arrays: dict[str, np.ndarray],
                         threshold: float = DECODE_THRESHOLD) -> Scene:
    """The Scene of one ``semdist`` index line and its arrays (see :func:`read_semdist`)."""
    ids = [int(v) for v in arrays["region_ids"]]
    maps = arrays["semdist"]
    masks = {rid: amodal_mask(m, threshold) for rid, m in zip(ids, maps)}
    edges = set()
    for i, a in enumerate(ids):
        for j in range(i + 1, len(ids)):
            b = ids[j]
            if not (masks[a] & masks[b]).any():
                continue
            sign = depth_order_from_semdist(maps[i], maps[j], threshold)
            if sign:
                edges.add((a, b) if sign > 0 else (b, a))
    return _target_scene(record, masks, edges, {})


def decode_layered_scene(record: dict[str, Any], arrays: dict[str, np.ndarray]) -> Scene:
    """The Scene of one ``layered`` index line and its arrays (see :func:`read_layered`)."""
    instances = np.asarray(arrays["instances"], dtype=np.int64)
    ids = [int(v) for v in np.unique(instances) if v > 0]
    masks = {rid: (instances == rid).any(axis=0) for rid in ids}
    pairs = []
    for k in range(instances.shape[0] - 1):
        for j in range(k + 1, instances.shape[0]):
            both = (instances[k] > 0) & (instances[j] > 0)
            pairs.append(np.stack([instances[k][both], instances[j][both]], axis=1))
    edges = {(int(a), int(b)) for a, b in np.unique(np.concatenate(pairs or [np.zeros((0, 2), np.int64)]),
                                                     axis=0)}
    categories = dict(zip((int(v) for v in arrays.get("region_ids", [])),
                          (int(v) for v in arrays.get("region_classes", []))))
    return _target_scene(record, masks, edges, categories)


def read_semdist(path: str | Path, *, threshold: float = DECODE_THRESHOLD,
                 on_error: OnError | ErrorPolicy = "fail") -> Iterable[Scene]:
    """Yield the Scenes of a ``semdist`` folder, decoded from the sem-dist maps alone (SLN Eq. 2-5): each
    region's amodal mask is frac(M) > ``threshold`` (Eq. 3); two regions whose masks overlap are ordered by
    R_AB (Eq. 4-5, :func:`amodaldata.targets.depth_order_from_semdist`); visible parts follow from the order."""
    return _read_targets(path, lambda record, arrays: decode_semdist_scene(record, arrays, threshold), on_error)


def read_layered(path: str | Path, *, on_error: OnError | ErrorPolicy = "fail") -> Iterable[Scene]:
    """Yield the Scenes of a ``layered`` folder, rebuilt from the K instance layers: a region is wherever its
    id appears in a layer; where two regions cover one pixel, the one in the nearer layer is in front."""
    return _read_targets(path, decode_layered_scene, on_error)
