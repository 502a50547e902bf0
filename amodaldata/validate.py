"""Schema and geometry checks of an annotation file, reported as counts per problem with the first examples.

Unlike the readers, which stop at (or skip) the first bad item, validation walks the whole file and reports
every problem, located by image, annotation and region id. Parquet shards are checked by
:func:`amodaldata.validate_shards.validate_shards` into the same :class:`ValidationReport`. Checks (issue 3):

- JSON that cannot be parsed; missing or mistyped fields; duplicate image / annotation ids and ``order`` values;
  annotations naming an image the ``images`` list lacks; image files missing on disk (with an image folder);
  category ids missing from the ``categories`` list;
- polygons with fewer than 3 points, NaN / infinite / non-numeric coordinates, coordinates outside the image,
  self-intersecting polygons (shapely's validity test; ``fix`` repairs them with ``shapely.make_valid``);
- RLE masks whose size is not the image's or whose counts do not decode;
- visible masks reaching outside the amodal mask;
- a stored ``area`` or ``occlude_rate`` disagreeing with the masks; COCOA's stored ``visible_mask``
  disagreeing with the visible part its order implies; cycles in COCOA's ``depth_constraint``.

Tolerances: COCOA's ``area`` and ``occlude_rate`` are exact pixel statistics of the layer stack in the release
(checked to 0.5 pixel and :data:`RATE_TOLERANCE`); the COCO-style formats' ``area`` may come from other
tools, so it is allowed :data:`AREA_RELATIVE` of the pixel count (plus one pixel), and their independently
annotated visible masks may leak :data:`LEAK_RELATIVE` of their area outside the amodal mask.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import shapely
from pycocotools import mask as cocomask

from .atomic import atomic_path
from .errors import AnnotationError
from .images import MAX_SIDE, image_problem
from .layers import LayerStack
from .order import OcclusionOrder

RATE_TOLERANCE = 1e-6
AREA_RELATIVE = 0.01
LEAK_RELATIVE = 0.01
#: Examples kept per kind of problem.
EXAMPLES = 5

#: Kind of problem -> what the report calls it.
KINDS: dict[str, str] = {
    "json": "unreadable JSON",
    "schema": "missing or mistyped fields",
    "few-points": "polygons with fewer than 3 points",
    "bad-coordinates": "NaN, infinite or non-numeric polygon coordinates",
    "out-of-image": "polygon coordinates outside the image",
    "self-intersection": "self-intersecting polygons",
    "rle": "RLE masks of the wrong size or undecodable",
    "visible-outside-amodal": "visible masks outside the amodal mask",
    "area": "stored area disagreeing with the mask",
    "occlude-rate": "stored occlude_rate (shards: occlusion_rate) disagreeing with the masks",
    "visible-order": "stored visible masks disagreeing with the occlusion order",
    "depth-cycle": "depth order cycles",
    "duplicate-id": "duplicate ids",
    "unknown-image": "annotations for images the 'images' list lacks",
    "missing-image": "image files missing on disk",
    "unknown-category": "category ids missing from 'categories'",
    "parquet": "files that are not Parquet",
    "image": "images that do not decode or are not the annotated size",
    "polygons-rle": "stored amodal polygons disagreeing with the stored amodal RLE",
    "unknown-region": "order edges naming regions the row lacks",
    "visible-overlap": "given visible masks of two regions overlapping",
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


_COCOA = dict(nested=True, amodal=("segmentation",), visible=("visible_mask",), invisible=("invisible_mask",))
_CLS = dict(nested=False, amodal=("segmentation",), visible=("visible_mask",), invisible=("invisible_mask",))
LAYOUTS: dict[str, Layout] = {
    "cocoa": Layout("cocoa", **_COCOA),  # type: ignore[arg-type]
    "bsds": Layout("bsds", **_COCOA),  # type: ignore[arg-type]
    "cocoa-cls": Layout("cocoa-cls", **_CLS),  # type: ignore[arg-type]
    "d2sa": Layout("d2sa", **_CLS),  # type: ignore[arg-type]
    "kins": Layout("kins", nested=False, amodal=("segmentation", "a_segm"), visible=("inmodal_seg", "i_segm"),
                   order_fields=("oco_id", "ico_id")),
}


@dataclass
class Problem:
    kind: str
    message: str
    image_id: Any = None
    annotation_id: Any = None
    region_id: Any = None
    file: str | None = None

    def where(self) -> str:
        """``file, image I, annotation A, region R``: the parts that are known."""
        parts = [self.file] if self.file is not None else []
        parts += [f"{name} {value}" for name, value in (("image", self.image_id), ("annotation", self.annotation_id),
                                                       ("region", self.region_id)) if value is not None]
        return ", ".join(parts)


@dataclass
class ValidationReport:
    """Counts per kind of problem, the first :data:`EXAMPLES` of each, and what was checked / repaired."""

    file: str
    format: str
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[Problem]] = field(default_factory=dict)
    images: int = 0
    annotations: int = 0
    regions: int = 0
    fixed: int = 0
    holes_dropped: int = 0
    fixed_file: Path | None = None

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(Problem(kind, message, **where))

    @property
    def clean(self) -> bool:
        """No problem left (self-intersections count as solved when every one was repaired)."""
        left = Counter(self.counts)
        if self.fixed and self.fixed == left["self-intersection"]:
            del left["self-intersection"]
        return not +left

    def lines(self) -> list[str]:
        out = [f"{self.file} ({self.format}): {self.images} images, {self.annotations} annotations, "
               f"{self.regions} regions checked"]
        if not self.counts:
            out.append("clean: no problem found")
        for kind, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"{n} x {KINDS[kind]} [{kind}]")
            for p in self.examples[kind]:
                out.append(f"    {p.where() + ': ' if p.where() else ''}{p.message}")
        if self.fixed_file is not None:
            out.append(f"repaired {self.fixed} self-intersecting polygon(s) with shapely.make_valid "
                       f"({self.holes_dropped} hole(s) dropped: COCO polygons cannot hold holes) -> "
                       f"{self.fixed_file}; stored area / occlude_rate / visible masks of those regions are "
                       f"not recomputed (convert the fixed file to its own format to recompute them)")
        return out


def validate_file(path: str | Path, layout: Layout, *, images: str | Path | None = None,
                  fix_out: str | Path | None = None) -> ValidationReport:
    """Check ``path`` against ``layout``; with ``fix_out``, write a copy with self-intersecting polygons
    repaired there (atomically; only when something was repaired)."""
    path = Path(path)
    report = ValidationReport(file=str(path), format=layout.name)
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


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Walker:
    """One pass over the parsed file, adding every problem to the report."""

    def __init__(self, report: ValidationReport, layout: Layout, path: Path, image_dir: Path | None,
                 fix: bool) -> None:
        self.report, self.layout, self.path, self.image_dir, self.fix = report, layout, path, image_dir, fix

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.report.add(kind, message, **where)

    # -- images -------------------------------------------------------------------------------------
    def image_records(self, records: Any) -> dict[Any, tuple[int, int] | None]:
        """Image id -> (height, width); None for a record whose size is unusable (reported once, here)."""
        sizes: dict[Any, tuple[int, int] | None] = {}
        if not isinstance(records, list):
            self.add("schema", f"'images' must be a list, got {type(records).__name__}")
            return sizes
        for index, record in enumerate(records):
            self.report.images += 1
            if not isinstance(record, dict) or not _typed(record.get("id"), (int, str)):
                self.add("schema", f"image record #{index} has no int/str 'id'")
                continue
            image_id = record["id"]
            if image_id in sizes:
                self.add("duplicate-id", "duplicate image id", image_id=image_id)
                continue
            w, h = record.get("width"), record.get("height")
            if not (_typed(w, (int,)) and _typed(h, (int,)) and 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                self.add("schema", f"image record needs int 'width' and 'height' from 1 to {MAX_SIDE}, got {w!r} x "
                         f"{h!r}", image_id=image_id)
                sizes[image_id] = None
                continue
            sizes[image_id] = (h, w)
            if self.image_dir is not None:
                name = record.get("file_name")
                if not isinstance(name, str):
                    self.add("schema", "image record has no 'file_name' to look for on disk", image_id=image_id)
                elif not (self.image_dir / name).is_file():
                    self.add("missing-image", f"{name} not found in {self.image_dir}", image_id=image_id)
                else:
                    problem = image_problem((self.image_dir / name).read_bytes(), h, w)
                    if problem is not None:
                        self.add("image", f"image {self.image_dir / name} {problem}", image_id=image_id)
        return sizes

    # -- masks --------------------------------------------------------------------------------------
    def mask(self, seg: Any, h: int, w: int, key: str, set_fixed: Callable[[Any], None] | None,
             **where: Any) -> np.ndarray | None:
        """Check one segmentation (polygons or RLE); return its bitmap when it can be rasterised."""
        if isinstance(seg, dict):
            return self.rle(seg, h, w, key, **where)
        if isinstance(seg, list) and seg:
            return self.polygons(seg, h, w, key, set_fixed, **where)
        self.add("schema", f"'{key}' must be polygons or RLE, got {type(seg).__name__}"
                 f"{' (empty)' if isinstance(seg, list) else ''}", **where)
        return None

    def rle(self, rle: dict, h: int, w: int, key: str, **where: Any) -> np.ndarray | None:
        size, counts = rle.get("size"), rle.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_typed(v, (int,)) for v in size)) \
                or not isinstance(counts, (str, list)):
            self.add("rle", f"'{key}' RLE needs 'size' [h, w] and 'counts' (string or list)", **where)
            return None
        if size != [h, w]:
            self.add("rle", f"'{key}' RLE size {size} is not the image size [{h}, {w}]", **where)
            return None
        try:
            if isinstance(counts, list):
                if sum(counts) != h * w:
                    raise ValueError(f"counts sum to {sum(counts)}, not {h * w}")
                coded = cocomask.frPyObjects({"size": size, "counts": counts}, h, w)
            else:
                coded = {"size": size, "counts": counts.encode("ascii")}
            bitmap = cocomask.decode(coded).astype(bool)
            if int(cocomask.area(coded)) != int(bitmap.sum()):     # runs overflowing the image
                raise ValueError("its runs do not add up to the image size")
        except Exception as exc:  # pycocotools raises plain errors on corrupt strings
            self.add("rle", f"'{key}' RLE does not decode: {exc}", **where)
            return None
        return bitmap

    def polygons(self, seg: list, h: int, w: int, key: str, set_fixed: Callable[[Any], None] | None,
                 **where: Any) -> np.ndarray | None:
        flat = all(_number(v) for v in seg)
        polys = [seg] if flat else seg
        usable, repaired, changed = True, [], False
        for i, poly in enumerate(polys):
            label = f"'{key}' polygon {i}"
            if not isinstance(poly, list) or not all(_number(v) for v in poly):
                self.add("bad-coordinates", f"{label} has a non-numeric coordinate", **where)
                usable = False
                repaired.append(poly)
                continue
            if len(poly) % 2:
                self.add("bad-coordinates", f"{label} has an odd number of coordinates ({len(poly)})", **where)
                usable = False
                repaired.append(poly)
                continue
            if len(poly) < 6:
                self.add("few-points", f"{label} has {len(poly) // 2} point(s); at least 3 are needed", **where)
                usable = False
                repaired.append(poly)
                continue
            xy = np.asarray(poly, dtype=float).reshape(-1, 2)
            if not np.isfinite(xy).all():
                self.add("bad-coordinates", f"{label} has a NaN or infinite coordinate", **where)
                usable = False
                repaired.append(poly)
                continue
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            if lo[0] < 0 or lo[1] < 0 or hi[0] > w or hi[1] > h:
                self.add("out-of-image", f"{label} spans x {lo[0]:g}..{hi[0]:g}, y {lo[1]:g}..{hi[1]:g}; "
                         f"the image is {w} x {h}", **where)
            reason = shapely.is_valid_reason(shapely.Polygon(xy))
            if reason != "Valid Geometry":
                self.add("self-intersection", f"{label}: {reason}", **where)
                parts, holes = _repair(xy) if set_fixed is not None else ([], 0)
                if parts:
                    repaired.extend(parts)
                    self.report.fixed += 1
                    self.report.holes_dropped += holes
                    changed = True
                    continue
            repaired.append(poly)
        if changed and set_fixed is not None:
            set_fixed(repaired[0] if flat and len(repaired) == 1 else repaired)
        if not usable:
            return None
        rles = cocomask.frPyObjects([list(map(float, p)) for p in polys], h, w)
        return cocomask.decode(cocomask.merge(rles)).astype(bool)

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
            if not _typed(image_id, (int, str)):
                self.add("schema", "annotation has no int/str 'image_id'", **where)
                continue
            if not isinstance(ann.get("regions"), list):
                self.add("schema", "annotation has no 'regions' list", **where)
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
            self.add("schema", f"'depth_constraint' must be a string, got {type(constraint).__name__}", **where)
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
            if _typed(rank, (int,)) and rank >= 1:
                if rank in ranks.values():
                    self.add("duplicate-id", f"two regions have order {rank}", **at)
                    complete = False
                ranks[rid] = rank
            else:
                self.add("schema", f"region needs a positive int 'order', got {rank!r}", **at)
                complete = False
            for key, types in (("name", (str,)), ("isStuff", (int,)), ("area", (int, float)),
                               ("occlude_rate", (int, float))):
                if key not in region:
                    self.add("schema", f"region has no '{key}' field", **at)
                elif not _typed(region[key], types) or (key == "isStuff" and region[key] not in (0, 1)):
                    self.add("schema", f"region field '{key}' has the wrong type or value: {region[key]!r}", **at)
            if "segmentation" not in region:
                self.add("schema", "region has no 'segmentation' field", **at)
                complete = False
                continue
            bitmap = self.mask(region["segmentation"], h, w, "segmentation",
                               (lambda v, r=region: r.__setitem__("segmentation", v)) if self.fix else None, **at)
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
            graph = OcclusionOrder.from_depth_constraint(constraint, {v: k for k, v in ranks.items()})
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
        if _number(rate) and abs(rate - (hidden / area if area else 0.0)) > RATE_TOLERANCE:
            self.add("occlude-rate", f"occlude_rate {rate:.6g} but the order hides {hidden} of {area} pixels "
                     f"({hidden / area if area else 0:.6g})", **at)
        visible = region.get("visible_mask")
        if visible is not None:
            bitmap = self.rle(visible, h, w, "visible_mask", **at) if isinstance(visible, dict) else None
            if not isinstance(visible, dict):
                self.add("rle", "'visible_mask' must be an RLE object", **at)
            if bitmap is not None:
                outside = int(np.count_nonzero(bitmap & ~stack.amodal(rid)))
                if outside:
                    self.add("visible-outside-amodal", f"{outside} visible pixel(s) outside the amodal mask", **at)
                differ = int(np.count_nonzero(bitmap != stack.visible(rid)))
                if differ:
                    self.add("visible-order", f"visible_mask differs from the visible part the order implies "
                             f"in {differ} pixel(s)", **at)
        invisible = region.get("invisible_mask")
        if invisible is not None:
            if isinstance(invisible, dict):
                self.rle(invisible, h, w, "invisible_mask", **at)
            else:
                self.add("rle", "'invisible_mask' must be an RLE object", **at)

    def stored_area(self, stored: Any, pixels: int, exact: bool, **at: Any) -> None:
        if not _number(stored) or not math.isfinite(stored):
            return
        allowed = 0.5 if exact else 1 + AREA_RELATIVE * pixels
        if abs(stored - pixels) > allowed:
            self.add("area", f"area {stored:g} but the mask has {pixels} pixel(s)", **at)

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
            if not _typed(ann_id, (int, str)):
                self.add("schema", "annotation has no int/str 'id'", **at)
            elif ann_id in seen:
                self.add("duplicate-id", "duplicate annotation id", **at)
            seen.add(ann_id)
            cid = ann.get("category_id")
            if not _typed(cid, (int,)):
                self.add("schema", f"annotation needs an int 'category_id', got {cid!r}", **at)
            elif categories is not None and cid not in categories:
                self.add("unknown-category", f"category_id {cid} is not in 'categories'", **at)
            if not _typed(image_id, (int, str)):
                self.add("schema", "annotation has no int/str 'image_id'", **at)
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
            if not isinstance(cat, dict) or not _typed(cat.get("id"), (int,)) or not isinstance(cat.get("name"), str):
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
            if key in ann and not (_typed(value, (int,)) and value >= 0):
                self.add("schema", f"'{key}' must be a non-negative int, got {value!r}", **at)
        key = next((k for k in self.layout.amodal if k in ann), None)
        if key is None:
            self.add("schema", f"annotation has no amodal mask ({' or '.join(self.layout.amodal)})", **at)
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
        if _number(rate) and pixels and (invisible is not None or visible is not None):
            hidden = int(np.count_nonzero(invisible & amodal)) if invisible is not None \
                else pixels - int(np.count_nonzero(visible & amodal))
            if abs(rate - hidden / pixels) > 1e-3:
                self.add("occlude-rate", f"occlude_rate {rate:.6g} but the masks hide {hidden} of {pixels} "
                         f"pixels ({hidden / pixels:.6g})", **at)


def _repair(xy: np.ndarray) -> tuple[list[list[float]], int]:
    """The polygons of ``shapely.make_valid`` of an invalid ring (flat coordinate lists) and the holes dropped."""
    fixed = shapely.make_valid(shapely.Polygon(xy))
    parts = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
    polygons = [p for g in parts for p in shapely.get_parts(g)]
    out, holes = [], 0
    for polygon in polygons:
        if polygon.area <= 0:
            continue
        ring = np.asarray(polygon.exterior.coords)[:-1]
        out.append([float(v) for v in ring.ravel()])
        holes += len(polygon.interiors)
    return out, holes
