"""The problems a validation finds, its report, and the geometry checks that need no file format.

Validation walks a whole input and reports every problem, located by image, annotation and region id, as
counts per kind with the first examples (:class:`ValidationReport`); a missing or mistyped field is a
:class:`MissingField` or :class:`WrongType` (as datumaro's schema errors). Each format's own walk lies beside its
reader (:mod:`converters.validate` for the JSON formats, :mod:`amodaldata.validate_shards` for Parquet
shards); they share the checks here (:class:`GeometryChecks`):

- polygons with fewer than 3 points, NaN / infinite / non-numeric coordinates, coordinates outside the image,
  self-intersecting polygons (shapely's validity test; ``fix`` repairs them with ``shapely.make_valid``);
- RLE masks whose size is not the image's or whose counts do not decode;
- a stored area disagreeing with the mask.

Tolerances: an exact area (a pixel statistic of the layer stack, as COCOA's) is checked to 0.5 pixel and
occlusion rates to :data:`RATE_TOLERANCE`; other areas may come from other tools, so they are allowed
:data:`AREA_RELATIVE` of the pixel count (plus one pixel), and independently annotated visible masks may
leak :data:`LEAK_RELATIVE` of their area outside the amodal mask.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import shapely
from pycocotools import mask as cocomask

RATE_TOLERANCE = 1e-6
AREA_RELATIVE = 0.01
LEAK_RELATIVE = 0.01
#: Examples kept per kind of problem.
EXAMPLES = 5

#: Kind of problem -> what the report calls it.
KINDS: dict[str, str] = {
    "schema": "missing or mistyped fields",
    "few-points": "polygons with fewer than 3 points",
    "bad-coordinates": "NaN, infinite or non-numeric polygon coordinates",
    "out-of-image": "polygon coordinates outside the image",
    "self-intersection": "self-intersecting polygons",
    "rle": "RLE masks of the wrong size or undecodable",
    "visible-outside-amodal": "visible masks outside the amodal mask",
    "area": "stored area disagreeing with the mask",
    "occlude-rate": "stored occlusion rates disagreeing with the masks",
    "visible-order": "stored visible masks disagreeing with the occlusion order",
    "depth-cycle": "depth order cycles",
    "duplicate-id": "duplicate ids",
    "missing-image": "image files missing on disk",
    "parquet": "files that are not Parquet",
    "image": "images that do not decode or are not the annotated size",
    "polygons-rle": "stored amodal polygons disagreeing with the stored amodal RLE",
    "unknown-region": "order edges or ids naming regions the scene lacks",
    "visible-overlap": "given visible masks of two regions overlapping",
}

@dataclass
class Problem:
    """One problem: its kind (a key of the report's kinds), what is wrong, and where."""

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
class MissingField(Problem):
    """A required field that is absent (a ``schema`` problem, as datumaro's ``MissingFieldError``)."""

    field: str = ""


@dataclass
class WrongType(Problem):
    """A field of the wrong type or value (a ``schema`` problem, as datumaro's ``InvalidFieldTypeError``):
    the type names ``expected`` and the ``actual`` one."""

    field: str = ""
    expected: tuple[str, ...] = ()
    actual: str = ""


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
    kinds: Mapping[str, str] = field(default_factory=lambda: KINDS)

    def add(self, kind: str, message: str, problem: type[Problem] = Problem, **details: Any) -> None:
        """Count one problem of ``kind``; keep it as a ``problem`` (with its ``details``: where, and the field of
        a :class:`MissingField` / :class:`WrongType`) while fewer than :data:`EXAMPLES` are kept."""
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(problem(kind, message, **details))

    def field_problem(self, record: dict, key: str, types: tuple[type, ...], message: str, **where: Any) -> None:
        """A ``schema`` problem of ``record[key]``: :class:`MissingField` when absent, else :class:`WrongType`."""
        if key not in record:
            self.add("schema", message, MissingField, field=key, **where)
        else:
            self.add("schema", message, WrongType, field=key, expected=tuple(t.__name__ for t in types),
                     actual=type(record[key]).__name__, **where)

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
            out.append(f"{n} x {self.kinds[kind]} [{kind}]")
            for p in self.examples[kind]:
                out.append(f"    {p.where() + ': ' if p.where() else ''}{p.message}")
        if self.fixed_file is not None:
            out.append(f"repaired {self.fixed} self-intersecting polygon(s) with shapely.make_valid "
                       f"({self.holes_dropped} hole(s) dropped: COCO polygons cannot hold holes) -> "
                       f"{self.fixed_file}; stored areas, occlusion rates and visible masks of those "
                       f"regions are not recomputed (convert the fixed file to its own format to recompute them)")
        return out


def typed(value: Any, types: tuple[type, ...]) -> bool:
    """``value`` is one of ``types`` (a bool is not an int here)."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def number(v: Any) -> bool:
    """A JSON number (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class GeometryChecks:
    """The format-free checks of masks and areas, each adding its problems to ``report``; ``fix``: repair
    self-intersecting polygons (counted in the report)."""

    def __init__(self, report: ValidationReport, fix: bool) -> None:
        self.report, self.fix = report, fix

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.report.add(kind, message, **where)

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
        """Check one RLE mask (``key`` names it in messages); return its bitmap when it decodes."""
        size, counts = rle.get("size"), rle.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(typed(v, (int,)) for v in size)) \
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
        """Check polygons (one flat list or a list of them); with ``set_fixed``, hand it the repaired
        polygons when some were self-intersecting. Return the bitmap when every polygon is usable."""
        flat = all(number(v) for v in seg)
        polys = [seg] if flat else seg
        usable, repaired, changed = True, [], False
        for i, poly in enumerate(polys):
            label = f"'{key}' polygon {i}"
            if not isinstance(poly, list) or not all(number(v) for v in poly):
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

    def stored_area(self, stored: Any, pixels: int, exact: bool, **at: Any) -> None:
        """A stored area against the mask's pixel count: to 0.5 pixel when ``exact``, else to
        :data:`AREA_RELATIVE`."""
        if not number(stored) or not math.isfinite(stored):
            return
        allowed = 0.5 if exact else 1 + AREA_RELATIVE * pixels
        if abs(stored - pixels) > allowed:
            self.add("area", f"area {stored:g} but the mask has {pixels} pixel(s)", **at)


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
