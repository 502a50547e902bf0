"""Write-only target formats: ``semdist`` (SLN, seed 000) and ``layered`` (layered-embedding net, seed 002).

Both write a folder with one compressed ``.npz`` per scene, named ``{image_id}.npz`` (``{image_id}-{annotation
id}.npz`` when an image has several annotations), and ``index.jsonl``: one line per scene with its ``file``,
``image_id``, ``annotation_id``, ``annotator``, ``file_name``, ``height``, ``width`` and ``regions``
(``id``, ``name``, ``category_id``, ``is_stuff``), in the order of the arrays' first axis.

``semdist`` keys (N regions, K stack depth; see :func:`amodaldata.targets.scene_targets`):
``region_ids`` (N,), ``semdist`` float32 (N, H, W) = C - L (SLN Eq. 1, C = ``confidence``), ``amodal`` and
``visible`` bool (N, H, W), ``instance_layering`` uint8 (N, H, W) and ``global_layering`` uint8 (H, W)
(SLN Sec. 4.3-4.4, capped at ``max_level``), ``layer_stack`` int32 (K, H, W), ``occlusion_rate`` (N,),
``order_edges`` (E, 2), and scalars ``confidence`` and ``max_level``.

``layered`` keys: ``classes`` and ``instances`` int32 (``layers``, H, W): the class and the region id of the
k-th nearest object at each pixel (0 = none); ``region_ids`` (N,) and ``region_classes`` (N,).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from amodaldata.errors import FormatError
from amodaldata.scene import Scene
from amodaldata.targets import GT_CONFIDENCE, layered_masks, region_classes, scene_targets

from .labels import COCO_TABLE, load_label_map, normalise
from .losses import LossReport, Written


def _scene_stem(scene: Scene, seen: set[str]) -> str:
    stem = str(scene.id)
    if stem in seen and scene.annotation_id is not None:
        stem = f"{scene.id}-{scene.annotation_id}"
    n = 1
    base = stem
    while stem in seen:
        n += 1
        stem = f"{base}-{n}"
    seen.add(stem)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def _index_record(scene: Scene, file: str) -> dict[str, Any]:
    return {
        "file": file, "image_id": scene.id, "annotation_id": scene.annotation_id, "annotator": scene.annotator,
        "file_name": scene.file_name, "height": scene.height, "width": scene.width,
        "regions": [{"id": r.id, "name": r.name, "category_id": r.category_id, "is_stuff": r.is_stuff}
                    for r in scene.regions],
    }


def _write_npz_folder(scenes: Iterable[Scene], out: Path, arrays_of: Callable[[Scene], dict[str, np.ndarray]],
                      written: Written) -> int:
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with open(out / "index.jsonl", "w") as index:
        for scene in scenes:
            stem = _scene_stem(scene, seen)
            np.savez_compressed(out / f"{stem}.npz", **arrays_of(scene))
            index.write(json.dumps(_index_record(scene, f"{stem}.npz")) + "\n")
            written.add(len(scene.regions))
    return written.scenes


def write_semdist(scenes: Iterable[Scene], out: str | Path, *, max_level: int = 4,
                  confidence: float = GT_CONFIDENCE, written: Written | None = None) -> int:
    """Write sem-dist targets (see the module docstring); return the number of scenes written."""

    def arrays(scene: Scene) -> dict[str, np.ndarray]:
        t = scene_targets(scene, max_level=max_level, layers=1, confidence=confidence)
        del t["layered_classes"], t["layered_instances"]
        return {**t, "confidence": np.float32(confidence), "max_level": np.int32(max_level)}

    return _write_npz_folder(scenes, Path(out), arrays, written if written is not None else Written())


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
        lm = layered_masks(scene.layers, layers, classes)
        ids = [r.id for r in scene.regions]
        return {"classes": lm.classes, "instances": lm.instances.astype(np.int32),
                "region_ids": np.asarray(ids, dtype=np.int64),
                "region_classes": np.asarray([classes[i] for i in ids], dtype=np.int32)}

    return _write_npz_folder(scenes, Path(out), arrays, written if written is not None else Written())
