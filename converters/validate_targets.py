"""Checks of the target folders (``semdist``, ``layered``: :mod:`converters.targets`), reported like every
other format's checks (:class:`amodaldata.validate.ValidationReport`).

Every line of ``index.jsonl`` and its ``.npz`` is walked, and every problem is reported, located by file,
image, annotation and region id:

- the index: lines that are not JSON objects; a missing or mistyped ``file``, ``image_id``, ``height``,
  ``width`` or ``regions`` (typed :class:`~amodaldata.validate.MissingField` / ``WrongType`` problems); a
  ``file`` named twice; image id + annotation id + annotator named twice; with an image folder, a
  ``file_name`` not in it;
- the arrays: an ``.npz`` that is missing or unreadable; the arrays the reader needs
  (:data:`converters.targets.READ_ARRAYS`) missing, and any of those or of the others a writer stores
  (:data:`~converters.targets.WRITTEN_ARRAYS`) of the wrong dtype or shape (N regions, K layers, the index's
  height and width); duplicate region ids; index regions the arrays lack;
- ``semdist``: non-finite maps or values above 1 (M = C - L, SLN Eq. 1, never exceeds the confidence);
  stored ``amodal`` masks other than the maps decode to (frac(M) > c, Eq. 3); visible pixels outside the
  amodal mask; ``order_edges`` naming regions the scene lacks or forming a cycle;
- ``layered``: classes present exactly where instances are; a layer filled where a nearer one is empty
  (layers fill front to back, Liu et al. 2020, Sec. 3.1); one region twice at one pixel; instances the
  ``region_ids`` lack; a pixel's class other than its region's ``region_classes`` entry;
- what the reader refuses on what is left (an order it decodes with a cycle, say): every scene a clean
  folder holds reads back.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from amodaldata.errors import AmodalDataError, DepthCycleError, FormatError
from amodaldata.order import OcclusionOrder
from amodaldata.targets import DECODE_THRESHOLD, amodal_mask
from amodaldata.validate import ValidationReport, typed

from .targets import READ_ARRAYS, WRITTEN_ARRAYS, decode_layered_scene, decode_semdist_scene

#: Index fields: name -> (the types it may have, required).
INDEX_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "file": ((str,), True), "image_id": ((int, str), True), "height": ((int,), True), "width": ((int,), True),
    "regions": ((list,), False), "annotation_id": ((int, str, type(None)), False),
    "annotator": ((str, int, type(None)), False), "file_name": ((str, type(None)), False),
}
#: The problems these checks add to the report's kinds.
TARGET_KINDS = {
    "arrays": "target arrays missing, unreadable, or of the wrong dtype or shape",
    "semdist": "sem-dist maps out of range or disagreeing with the stored masks",
    "layers": "layered masks whose classes, layers or region ids disagree",
    "unreadable": "scenes the reader refuses",
}
_KIND_NAMES = {"f": "float", "iu": "integer", "b": "bool"}
_DECODERS: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], Any]] = {
    "semdist": decode_semdist_scene, "layered": decode_layered_scene,
}


def validate_targets(path: str | Path, fmt: str, *, images: str | Path | None = None) -> ValidationReport:
    """Check the ``fmt`` (``semdist`` or ``layered``) folder ``path`` (module docstring); with ``images``, each
    index line's ``file_name`` must be in that folder. A folder without ``index.jsonl`` raises
    :class:`FormatError`."""
    from amodaldata.validate import KINDS

    folder = Path(path)
    index = folder / "index.jsonl"
    if not index.is_file():
        raise FormatError("not a target folder: no index.jsonl", file=str(folder))
    report = ValidationReport(file=str(folder), format=fmt, kinds={**KINDS, **TARGET_KINDS})
    walker = _Walker(report, fmt, folder, Path(images) if images is not None else None)
    with open(index, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            walker.line(number, line)
    return report


class _Walker:
    """One pass over the index lines of a target folder, adding every problem to the report."""

    def __init__(self, report: ValidationReport, fmt: str, folder: Path, image_dir: Path | None) -> None:
        self.report, self.fmt, self.folder, self.image_dir = report, fmt, folder, image_dir
        self.files: Counter = Counter()
        self.scenes: Counter = Counter()

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.report.add(kind, message, **where)

    def line(self, number: int, text: str) -> None:
        where: dict[str, Any] = {"file": f"{self.folder / 'index.jsonl'}:{number}"}
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add("schema", f"not JSON: {exc.msg}", **where)
            return
        if not isinstance(record, dict):
            self.add("schema", f"an index line must be a JSON object, got {type(record).__name__}", **where)
            return
        where["image_id"] = record.get("image_id")
        if not self.index_fields(record, where):
            return
        self.report.images += 1
        key = (json.dumps(record["image_id"]), json.dumps(record.get("annotation_id")),
               json.dumps(record.get("annotator")))
        self.scenes[key] += 1
        if self.scenes[key] == 2:
            self.add("duplicate-id", "image id, annotation id and annotator of an earlier line", **where)
        self.files[record["file"]] += 1
        if self.files[record["file"]] == 2:
            self.add("duplicate-id", f"file {record['file']!r} is named by an earlier line", **where)
        self.image_file(record, where)
        path = self.folder / record["file"]
        where = {**where, "file": str(path)}
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            self.add("arrays", f"cannot read the arrays: {exc}", **where)
            return
        problems = sum(self.report.counts.values())
        if not self.shapes(record, arrays, where):
            return
        self.report.annotations += 1
        self.report.regions += len(arrays["region_ids"]) if "region_ids" in arrays else 0
        (self.semdist if self.fmt == "semdist" else self.layered)(record, arrays, where)
        if sum(self.report.counts.values()) == problems:     # what the checks above cannot see
            self.reads_back(record, arrays, where)

    # -- the index ------------------------------------------------------------------------------------------
    def index_fields(self, record: dict, where: dict) -> bool:
        """The index fields' presence and types; False when the line cannot be followed further."""
        usable = True
        for key, (types, required) in INDEX_FIELDS.items():
            if key not in record:
                if required:
                    self.report.field_problem(record, key, types, f"index line has no '{key}'", **where)
                    usable = False
            elif not typed(record[key], types):
                names = "/".join("null" if t is type(None) else t.__name__ for t in types)
                self.report.field_problem(record, key, types, f"'{key}' must be {names}, got "
                                          f"{type(record[key]).__name__}", **where)
                usable = usable and not required
        for key in ("height", "width"):
            if typed(record.get(key), (int,)) and record[key] <= 0:
                self.add("schema", f"'{key}' must be positive, got {record[key]}", **where)
                usable = False
        for i, region in enumerate(record.get("regions") or [] if isinstance(record.get("regions"), list) else []):
            if not isinstance(region, dict) or not typed(region.get("id"), (int,)):
                self.add("schema", f"regions[{i}] must be an object with an integer 'id'", **where)
        return usable

    def image_file(self, record: dict, where: dict) -> None:
        if self.image_dir is None:
            return
        name = record.get("file_name")
        if not name:
            self.add("missing-image", "index line has no file_name to look for", **where)
        elif not (self.image_dir / name).is_file():
            self.add("missing-image", f"{name} not found in {self.image_dir}", **where)

    # -- the arrays -----------------------------------------------------------------------------------------
    def shapes(self, record: dict, arrays: dict[str, np.ndarray], where: dict) -> bool:
        """The arrays' presence, dtypes and shapes; False when the format's checks cannot run on them. An
        optional array of the wrong shape is reported and left out of the further checks."""
        needed, written = READ_ARRAYS[self.fmt], WRITTEN_ARRAYS[self.fmt]
        sizes: dict[str | int, int] = {"H": record["height"], "W": record["width"]}
        usable = True
        for key in needed:
            if key not in arrays:
                self.report.field_problem(arrays, key, (np.ndarray,), f"the arrays have no '{key}'", **where)
                usable = False
        for key, (axes, kinds) in {**needed, **written}.items():
            arr = arrays.get(key)
            if arr is None:
                continue
            ok = arr.dtype.kind in kinds and arr.ndim == len(axes)
            if ok:
                for axis, n in zip(axes, arr.shape):
                    if isinstance(axis, int):
                        ok = ok and n == axis
                    else:
                        ok = ok and sizes.setdefault(axis, n) == n
            if not ok:
                want = "(" + ", ".join(str(sizes.get(a, a)) for a in axes) + ")"
                self.add("arrays", f"'{key}' is {arr.dtype} {arr.shape}, expected {_KIND_NAMES[kinds]} {want}",
                         **where)
                if key in needed:
                    usable = False
                else:
                    del arrays[key]
        if not usable:
            return False
        ids = arrays.get("region_ids")
        if ids is not None:
            counts = Counter(int(v) for v in ids)
            for rid, n in sorted(counts.items()):
                if n > 1 or rid <= 0:
                    self.add("duplicate-id" if n > 1 else "schema",
                             f"region id {rid} {'appears ' + str(n) + ' times' if n > 1 else 'must be positive'}",
                             **where, region_id=rid)
            if any(n > 1 or rid <= 0 for rid, n in counts.items()):
                return False
            for region in record.get("regions") or []:
                if isinstance(region, dict) and typed(region.get("id"), (int,)) and region["id"] not in counts:
                    self.add("unknown-region", "index region the arrays lack", **where, region_id=region["id"])
        return True

    def semdist(self, record: dict, arrays: dict[str, np.ndarray], where: dict) -> None:
        ids = [int(v) for v in arrays["region_ids"]]
        maps = arrays["semdist"]
        for rid, m in zip(ids, maps):
            at = {**where, "region_id": rid}
            if not np.isfinite(m).all():
                self.add("semdist", "the sem-dist map has NaN or infinite values", **at)
                continue
            if m.max(initial=0) > 1:
                self.add("semdist", f"the sem-dist map reaches {float(m.max()):g}; M = C - L is at most 1", **at)
        finite = np.isfinite(maps).all(axis=(1, 2)) if maps.size else np.ones(len(ids), bool)
        threshold = DECODE_THRESHOLD
        if "amodal" in arrays:
            for i, rid in enumerate(ids):
                if finite[i]:
                    differ = int(np.count_nonzero(amodal_mask(maps[i], threshold) != arrays["amodal"][i]))
                    if differ:
                        self.add("semdist", f"the stored amodal mask differs from the decoded map on {differ} "
                                 f"pixel(s) (frac(M) > {threshold})", **where, region_id=rid)
            if "visible" in arrays:
                for i, rid in enumerate(ids):
                    leak = int(np.count_nonzero(arrays["visible"][i] & ~arrays["amodal"][i]))
                    if leak:
                        self.add("visible-outside-amodal", f"{leak} visible pixel(s) outside the amodal mask",
                                 **where, region_id=rid)
        if "order_edges" in arrays:
            self.order(arrays["order_edges"], set(ids), where)

    def order(self, edges: np.ndarray, ids: set[int], where: dict) -> None:
        pairs = {(int(a), int(b)) for a, b in edges}
        for a, b in sorted(pairs):
            if a not in ids or b not in ids:
                self.add("unknown-region", f"order edge {a} -> {b} names a region the scene lacks", **where)
        try:
            OcclusionOrder({(a, b) for a, b in pairs if a in ids and b in ids}).front_to_back(sorted(ids))
        except DepthCycleError as err:
            self.add("depth-cycle", err.message, **where)

    def layered(self, record: dict, arrays: dict[str, np.ndarray], where: dict) -> None:
        instances = arrays["instances"].astype(np.int64)
        filled = instances > 0
        if "classes" in arrays:
            mismatch = int(np.count_nonzero(filled != (arrays["classes"] > 0)))
            if mismatch:
                self.add("layers", f"classes and instances disagree on being empty at {mismatch} pixel(s)", **where)
        gaps = int(np.count_nonzero(~filled[:-1] & filled[1:])) if len(instances) > 1 else 0
        if gaps:
            self.add("layers", f"{gaps} pixel(s) have a layer filled behind an empty nearer one", **where)
        for k in range(len(instances)):
            for j in range(k + 1, len(instances)):
                twice = filled[k] & (instances[k] == instances[j])
                for rid in np.unique(instances[k][twice]):
                    self.add("layers", f"region in layers {k} and {j} at one pixel", **where, region_id=int(rid))
        ids = arrays.get("region_ids")
        if ids is None:
            return
        known = {int(v): i for i, v in enumerate(ids)}
        present = [int(v) for v in np.unique(instances) if v > 0]
        for rid in present:
            if rid not in known:
                self.add("unknown-region", "instance id the region_ids lack", **where, region_id=rid)
        if "classes" in arrays and "region_classes" in arrays:
            classes = arrays["classes"]
            for rid in present:
                if rid in known:
                    got = np.unique(classes[instances == rid])
                    want = int(arrays["region_classes"][known[rid]])
                    if got.size != 1 or int(got[0]) != want:
                        self.add("layers", f"class {want} in region_classes, {got.tolist()} in the layers",
                                 **where, region_id=rid)

    def reads_back(self, record: dict, arrays: dict[str, np.ndarray], where: dict) -> None:
        try:
            _DECODERS[self.fmt](record, arrays)
        except AmodalDataError as err:
            self.add("depth-cycle" if isinstance(err, DepthCycleError) else "unreadable", err.message, **where)
        except (KeyError, ValueError, IndexError) as exc:
            self.add("unreadable", f"the reader refuses it: {exc}", **where)
