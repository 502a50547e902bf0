"""``amodaldata validate`` for the JSON formats: each format's own walk over its file, on the layout its reader
uses (COCOA's region fields, the :class:`~converters.coco.InstanceLayout` of COCOA-cls, D2SA and KINS's two
releases), with the format-free mask and area checks of :class:`amodaldata.validate.GeometryChecks`.

Checks (issue 3), beside the geometry ones: JSON that cannot be parsed; missing or mistyped fields; duplicate
image / annotation ids and ``order`` values; annotations naming an image the ``images`` list lacks; image files
missing on disk (with an image folder); category ids missing from the ``categories`` list; visible masks
reaching outside the amodal mask; a stored ``area`` or ``occlude_rate`` disagreeing with the masks; COCOA's
stored ``visible_mask`` disagreeing with the visible part its order implies; cycles in COCOA's
``depth_constraint``. COCOA's ``area`` and ``occlude_rate`` are exact pixel statistics of the layer stack in the
release; the COCO-style formats' ``area`` is allowed :data:`~amodaldata.validate.AREA_RELATIVE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from amodaldata.atomic import atomic_path
from amodaldata.errors import AnnotationError
from amodaldata.images import MAX_SIDE, image_problem
from amodaldata.layers import LayerStack
from amodaldata.validate import (KINDS, LEAK_RELATIVE, RATE_TOLERANCE, GeometryChecks, MissingField, ValidationReport,
                                 number, typed)

from . import cocoa, cocoa_cls, d2sa, kins
from .coco import InstanceLayout

#: The kinds of problem only the JSON formats have, beside the core's.
JSON_KINDS: dict[str, str] = {
    "json": "unreadable JSON",
    "unknown-image": "annotations for images the 'images' list lacks",
    "unknown-category": "category ids missing from 'categories'",
}


@dataclass(frozen=True)
class Layout:
    """Where a format keeps its masks. ``nested``: COCOA's regions inside annotation objects; otherwise one
    annotation per instance (COCO style). Mask fields list alternatives (KINS's two releases)."""

    name: str
    nested: bool
    amodal: tuple[str, ...]
    visible: tuple[str, ...]
    invisible: tuple[str, ...] = ()
    order_fields: tuple[str, ...] = ()

    @classmethod
    def of_instances(cls, *layouts: InstanceLayout, order_fields: tuple[str, ...] = ()) -> Layout:
        """The layout of a COCO-style format whose reader takes any of ``layouts`` (the first names it)."""
        def keys(attr: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(getattr(lay, attr) for lay in layouts if getattr(lay, attr) is not None))

        return cls(layouts[0].name, nested=False, amodal=keys("amodal"), visible=keys("visible"),
                   invisible=keys("invisible"), order_fields=order_fields)


_COCOA = Layout("cocoa", nested=True, amodal=(cocoa.AMODAL,), visible=(cocoa.VISIBLE,),
                invisible=(cocoa.INVISIBLE,))
#: Format name -> the layout its file is checked against.
LAYOUTS: dict[str, Layout] = {
    "cocoa": _COCOA,
    "bsds": replace(_COCOA, name="bsds"),
    "cocoa-cls": Layout.of_instances(cocoa_cls.LAYOUT),
    "d2sa": Layout.of_instances(d2sa.LAYOUT),
    "kins": Layout.of_instances(kins.ORIGINAL, kins.RELEASE_2020, order_fields=kins.ORDER_FIELDS),
}


def validate_file(path: str | Path, layout: Layout, *, images: str | Path | None = None,
                  fix_out: str | Path | None = None) -> ValidationReport:
    """Check ``path`` against ``layout``; with ``fix_out``, write a copy with self-intersecting polygons
    repaired there (atomically; only when something was repaired)."""
    path = Path(path)
    report = ValidationReport(file=str(path), format=layout.name, kinds={**KINDS, **JSON_KINDS})
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise AnnotationError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise AnnotationError("a folder, not an annotation file", file=str(path)) from None
    except json.JSONDecodeError as exc:
        report.add("json", f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
        return report
    except UnicodeDecodeError as exc:
        report.add("json", f"not UTF-8 text: {exc.reason}")
        return report
    walker = _Walker(report, layout, path, Path(images) if images is not None else None, fix=fix_out is not None)
    if layout.nested:
        walker.nested(data)
    else:
        walker.instances(data)
    if fix_out is not None and report.fixed:
        fix_out = Path(fix_out)
        with atomic_path(fix_out) as tmp:
            tmp.write_text(json.dumps(data, separators=(",", ":")))
        report.fixed_file = fix_out
    return report


class _Walker(GeometryChecks):
    """One pass over the parsed file, adding every problem to the report."""

    def __init__(self, report: ValidationReport, layout: Layout, path: Path, image_dir: Path | None,
                 fix: bool) -> None:
        super().__init__(report, fix)
        self.layout, self.path, self.image_dir = layout, path, image_dir

    # -- images -------------------------------------------------------------------------------------
    def image_records(self, records: Any) -> dict[Any, tuple[int, int] | None]:
        """Image id -> (height, width); None for a record whose size is unusable (reported once, here)."""
        sizes: dict[Any, tuple[int, int] | None] = {}
        if not isinstance(records, list):
            self.add("schema", f"'images' must be a list, got {type(records).__name__}")
            return sizes
        for index, record in enumerate(records):
            self.report.images += 1
            if not isinstance(record, dict):
                self.add("schema", f"image record #{index} has no int/str 'id'")
                continue
            if not typed(record.get("id"), (int, str)):
                self.report.field_problem(record, "id", (int, str), f"image record #{index} has no int/str 'id'")
                continue
            image_id = record["id"]
            if image_id in sizes:
                self.add("duplicate-id", "duplicate image id", image_id=image_id)
                continue
            w, h = record.get("width"), record.get("height")
            if not (typed(w, (int,)) and typed(h, (int,)) and 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                self.add("schema", f"image record needs int 'width' and 'height' from 1 to {MAX_SIDE}, got {w!r} x "
                         f"{h!r}", image_id=image_id)
                sizes[image_id] = None
                continue
            sizes[image_id] = (h, w)
            if self.image_dir is not None:
                name = record.get("file_name")
                if not isinstance(name, str):
                    self.report.field_problem(record, "file_name", (str,), "image record has no 'file_name' to look "
                                              "for on disk", image_id=image_id)
                elif not (self.image_dir / name).is_file():
                    self.add("missing-image", f"{name} not found in {self.image_dir}", image_id=image_id)
                else:
                    problem = image_problem((self.image_dir / name).read_bytes(), h, w)
                    if problem is not None:
                        self.add("image", f"image {self.image_dir / name} {problem}", image_id=image_id)
        return sizes


    def annotation_objects(self, annotations: Any, instances: bool = False) -> Iterator[dict]:
        """The annotation objects of an ``annotations`` list, each counted (also as a region when every
        annotation is one instance); a list that is not one, and items that are not objects, are reported."""
        if not isinstance(annotations, list):
            self.add("schema", "'annotations' must be a list")
            return
        for index, ann in enumerate(annotations):
            self.report.annotations += 1
            self.report.regions += instances
            if not isinstance(ann, dict):
                self.add("schema", f"annotation #{index} is a {type(ann).__name__}, not an object")
                continue
            yield ann

    # -- COCOA / BSDS -------------------------------------------------------------------------------
    def nested(self, data: Any) -> None:
        if isinstance(data, dict) and "annotations" in data:
            sizes = self.image_records(data.get("images", []))
            has_images = "images" in data
            annotations = data["annotations"]
        elif isinstance(data, dict) and "regions" in data:
            sizes, has_images, annotations = {}, False, [data]
        elif isinstance(data, list):
            sizes, has_images, annotations = {}, False, data
        else:
            self.add("schema", f"not a {self.layout.name} file: expected 'annotations', a list of annotations or "
                     "one annotation with 'regions'")
            return
        seen: set[Any] = set()
        for ann in self.annotation_objects(annotations):
            image_id, ann_id = ann.get("image_id"), ann.get("id")
            where = {"image_id": image_id, "annotation_id": ann_id}
            if ann_id is not None:
                if ann_id in seen:
                    self.add("duplicate-id", "duplicate annotation id", **where)
                seen.add(ann_id)
            if not typed(image_id, (int, str)):
                self.report.field_problem(ann, "image_id", (int, str), "annotation has no int/str 'image_id'", **where)
                continue
            if not isinstance(ann.get("regions"), list):
                self.report.field_problem(ann, "regions", (list,), "annotation has no 'regions' list", **where)
                continue
            if image_id in sizes:
                size = sizes[image_id]
            else:
                size = self.size_from_disk(ann, has_images, **where)
            if size is None:
                continue
            self.annotation(ann, size, **where)

    def size_from_disk(self, ann: dict, has_images: bool, **where: Any) -> tuple[int, int] | None:
        if has_images:
            self.add("unknown-image", "annotation names an image the 'images' list does not have", **where)
            return None
        if self.image_dir is None:
            self.add("schema", "image size unknown: the file has no 'images' list (pass the image folder)",
                     **where)
            return None
        url = ann.get("url")
        candidates = [self.image_dir / url.rsplit("/", 1)[-1]] if isinstance(url, str) and url else []
        candidates += sorted(self.image_dir.glob(f"{where['image_id']}.*"))
        candidates += sorted(self.image_dir.glob(f"{self.path.stem}.*"))        # the demo layout: N.json, N.jpg
        for candidate in candidates:
            if candidate.suffix.lower() in (".jpg", ".jpeg", ".png") and candidate.is_file():
                from PIL import Image

                problem = image_problem(candidate.read_bytes())
                if problem is not None:
                    self.add("image", f"image {candidate} {problem}", **where)
                    return None
                with Image.open(candidate) as im:
                    return im.size[1], im.size[0]
        self.add("missing-image", f"no image file for the annotation in {self.image_dir}", **where)
        return None

    def annotation(self, ann: dict, size: tuple[int, int], **where: Any) -> None:
        h, w = size
        constraint = ann.get("depth_constraint")
        if constraint is not None and not isinstance(constraint, str):
            self.report.field_problem(ann, "depth_constraint", (str,), f"'depth_constraint' must be a string, got "
                                      f"{type(constraint).__name__}", **where)
            constraint = None
        amodal: dict[int, np.ndarray] = {}
        ranks: dict[int, int] = {}
        stored: dict[int, dict] = {}
        complete = True
        for index, region in enumerate(ann["regions"]):
            self.report.regions += 1
            rid = index + 1
            at = {**where, "region_id": rid}
            if not isinstance(region, dict):
                self.add("schema", f"region is a {type(region).__name__}, not an object", **at)
                complete = False
                continue
            rank = region.get("order")
            if typed(rank, (int,)) and rank >= 1:
                if rank in ranks.values():
                    self.add("duplicate-id", f"two regions have order {rank}", **at)
                    complete = False
                ranks[rid] = rank
            else:
                self.report.field_problem(region, "order", (int,), f"region needs a positive int 'order', got {rank!r}",
                                          **at)
                complete = False
            for key, types in (("name", (str,)), ("isStuff", (int,)), ("area", (int, float)),
                               ("occlude_rate", (int, float))):
                if key not in region:
                    self.report.field_problem(region, key, types, f"region has no '{key}' field", **at)
                elif not typed(region[key], types) or (key == "isStuff" and region[key] not in (0, 1)):
                    self.report.field_problem(region, key, types, f"region field '{key}' has the wrong type or value: "
                                              f"{region[key]!r}", **at)
            key = self.layout.amodal[0]
            if key not in region:
                self.report.field_problem(region, key, (list, dict), f"region has no '{key}' field", **at)
                complete = False
                continue
            bitmap = self.mask(region[key], h, w, key,
                               (lambda v, r=region: r.__setitem__(key, v)) if self.fix else None, **at)
            if bitmap is None:
                complete = False
                continue
            amodal[rid] = bitmap
            stored[rid] = region
            self.stored_area(region.get("area"), int(bitmap.sum()), exact=True, **at)
        if not complete:
            return
        order = self.cocoa_order(constraint, ranks, **where)
        if order is None:
            return
        stack = LayerStack.from_bitmaps([(rid, amodal[rid]) for rid in order], h, w)
        for rid in order:
            self.cocoa_region_masks(stored[rid], stack, rid, h, w, **{**where, "region_id": rid})

    def cocoa_order(self, constraint: str | None, ranks: dict[int, int], **where: Any) -> list[int] | None:
        ids = sorted(ranks, key=lambda r: ranks[r])
        if not constraint:
            return ids
        try:
            graph = cocoa.depth_constraint_order(constraint, {v: k for k, v in ranks.items()})
        except AnnotationError as err:
            self.add("schema" if "cycle" not in err.message else "depth-cycle", err.message, **where)
            return None
        cycle = graph.find_cycle()
        if cycle:
            start = min(range(len(cycle)), key=lambda i: ranks[cycle[i]])
            cycle = cycle[start:] + cycle[:start]
            chain = " -> ".join(str(ranks[r]) for r in [*cycle, cycle[0]])
            self.add("depth-cycle", f"depth_constraint has a cycle through orders {chain}", **where)
            return None
        return graph.front_to_back(ids, tie_break=ranks)

    def cocoa_region_masks(self, region: dict, stack: LayerStack, rid: int, h: int, w: int, **at: Any) -> None:
        area = stack.area(rid)
        hidden = int(np.count_nonzero(stack.levels[rid]))
        rate = region.get("occlude_rate")
        if number(rate) and abs(rate - (hidden / area if area else 0.0)) > RATE_TOLERANCE:
            self.add("occlude-rate", f"occlude_rate {rate:.6g} but the order hides {hidden} of {area} pixels "
                     f"({hidden / area if area else 0:.6g})", **at)
        key = self.layout.visible[0]
        visible = region.get(key)
        if visible is not None:
            bitmap = self.rle(visible, h, w, key, **at) if isinstance(visible, dict) else None
            if not isinstance(visible, dict):
                self.add("rle", f"'{key}' must be an RLE object", **at)
            if bitmap is not None:
                outside = int(np.count_nonzero(bitmap & ~stack.amodal(rid)))
                if outside:
                    self.add("visible-outside-amodal", f"{outside} visible pixel(s) outside the amodal mask", **at)
                differ = int(np.count_nonzero(bitmap != stack.visible(rid)))
                if differ:
                    self.add("visible-order", f"{key} differs from the visible part the order implies "
                             f"in {differ} pixel(s)", **at)
        key = self.layout.invisible[0]
        invisible = region.get(key)
        if invisible is not None:
            if isinstance(invisible, dict):
                self.rle(invisible, h, w, key, **at)
            else:
                self.add("rle", f"'{key}' must be an RLE object", **at)

    # -- COCO style ---------------------------------------------------------------------------------
    def instances(self, data: Any) -> None:
        if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
            self.add("schema", f"not a {self.layout.name} file: expected an object with 'images' and "
                     "'annotations'")
            return
        sizes = self.image_records(data["images"])
        categories = self.categories(data.get("categories"))
        annotations = data["annotations"]
        seen: set[Any] = set()
        for ann in self.annotation_objects(annotations, instances=True):
            image_id, ann_id = ann.get("image_id"), ann.get("id")
            at = {"image_id": image_id, "annotation_id": ann_id}
            if not typed(ann_id, (int, str)):
                self.report.field_problem(ann, "id", (int, str), "annotation has no int/str 'id'", **at)
            elif ann_id in seen:
                self.add("duplicate-id", "duplicate annotation id", **at)
            seen.add(ann_id)
            cid = ann.get("category_id")
            if not typed(cid, (int,)):
                self.report.field_problem(ann, "category_id", (int,), f"annotation needs an int 'category_id', got "
                                          f"{cid!r}", **at)
            elif categories is not None and cid not in categories:
                self.add("unknown-category", f"category_id {cid} is not in 'categories'", **at)
            if not typed(image_id, (int, str)):
                self.report.field_problem(ann, "image_id", (int, str), "annotation has no int/str 'image_id'", **at)
                continue
            if image_id not in sizes:
                self.add("unknown-image", "annotation names an image the 'images' list does not have", **at)
                continue
            size = sizes[image_id]
            if size is not None:
                self.instance(ann, size, **at)

    def categories(self, cats: Any) -> set[int] | None:
        if cats is None:
            return None
        if not isinstance(cats, list):
            self.add("schema", "'categories' must be a list")
            return None
        ids: set[int] = set()
        for cat in cats:
            if not isinstance(cat, dict) or not typed(cat.get("id"), (int,)) or not isinstance(cat.get("name"), str):
                self.add("schema", f"category record needs int 'id' and str 'name', got {cat!r}")
                continue
            if cat["id"] in ids:
                self.add("duplicate-id", f"duplicate category id {cat['id']}")
            ids.add(cat["id"])
        return ids

    def instance(self, ann: dict, size: tuple[int, int], **at: Any) -> None:
        h, w = size
        for key in self.layout.order_fields:
            value = ann.get(key)
            if key in ann and not (typed(value, (int,)) and value >= 0):
                self.report.field_problem(ann, key, (int,), f"'{key}' must be a non-negative int, got {value!r}", **at)
        key = next((k for k in self.layout.amodal if k in ann), None)
        if key is None:
            self.report.add("schema", f"annotation has no amodal mask ({' or '.join(self.layout.amodal)})",
                            MissingField, field=" or ".join(self.layout.amodal), **at)
            return
        amodal = self.mask(ann[key], h, w, key,
                           (lambda v, k=key: ann.__setitem__(k, v)) if self.fix else None, **at)
        visible_key = next((k for k in self.layout.visible if k in ann), None)
        visible = None
        if visible_key is not None and ann[visible_key] == []:      # no visible pixel (KINS 2020 i_segm)
            visible = np.zeros((h, w), dtype=bool)
        elif visible_key is not None:
            visible = self.mask(ann[visible_key], h, w, visible_key,
                                (lambda v, k=visible_key: ann.__setitem__(k, v)) if self.fix else None, **at)
        invisible_key = next((k for k in self.layout.invisible if k in ann), None)
        invisible = self.mask(ann[invisible_key], h, w, invisible_key, None, **at) if invisible_key else None
        if amodal is None:
            return
        pixels = int(amodal.sum())
        self.stored_area(ann.get("area"), pixels, exact=False, **at)
        if visible is not None:
            outside = int(np.count_nonzero(visible & ~amodal))
            if outside > LEAK_RELATIVE * max(int(visible.sum()), 1):
                self.add("visible-outside-amodal", f"{outside} of {int(visible.sum())} visible pixel(s) lie outside "
                         f"the amodal mask", **at)
        rate = ann.get("occlude_rate")
        if number(rate) and pixels and (invisible is not None or visible is not None):
            hidden = int(np.count_nonzero(invisible & amodal)) if invisible is not None \
                else pixels - int(np.count_nonzero(visible & amodal))
            if abs(rate - hidden / pixels) > 1e-3:
                self.add("occlude-rate", f"occlude_rate {rate:.6g} but the masks hide {hidden} of {pixels} "
                         f"pixels ({hidden / pixels:.6g})", **at)
