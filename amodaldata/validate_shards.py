"""Checks of Parquet shards (:mod:`amodaldata.shards`), reported like the JSON checks of :mod:`amodaldata.validate`.

Every row of a shard file or folder is walked, one record batch at a time (memory stays flat), and every
problem is reported, located by shard file, image, annotation and region id. Checks:

- files that are not Parquet, lack the shard columns, or whose columns do not cast to the shard types;
- per row: positive height and width; image id + annotation id + annotator unique across the dataset;
  embedded image bytes that do not decode (PIL) or are not height x width; with an image folder, rows stored
  without bytes whose ``file_name`` is not there;
- per region: duplicate region ids; amodal and visible RLE of the wrong size or whose counts do not decode;
  stored ``amodal_polygons`` that rasterise (pycocotools) to other pixels than the stored amodal RLE; visible
  pixels outside the amodal mask; an ``area`` other than the amodal pixel count;
- the order: edges naming regions the row lacks; cycles, named by region id; then, from the layer stack of the
  amodal masks and the order, an ``occlusion_rate`` other than the hidden fraction (to :data:`RATE_TOLERANCE`)
  and derived visible masks (``visible_given`` false) other than the visible part; given visible masks of two
  regions that overlap.

Derived visible masks must lie inside the amodal mask exactly; given ones (annotated independently, as in KINS)
may leak :data:`LEAK_RELATIVE` of their area, as the COCO-style JSON formats may.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pycocotools import mask as cocomask

from .errors import DepthCycleError, FormatError, GeometryError
from .images import image_problem
from .masks import Mask, normalise_polygons
from .order import OcclusionOrder
from .scene import Region, Scene
from .shards import REQUIRED_COLUMNS, SCHEMA, ShardSet
from .stack_runs import StackRuns
from .validate import LEAK_RELATIVE, RATE_TOLERANCE, ValidationReport


def validate_shards(path: str | Path, *, images: str | Path | None = None) -> ValidationReport:
    """Check every row of the shard file or folder ``path``. With ``images``, a row stored without image bytes
    must have its ``file_name`` in that folder. A missing path raises :class:`FormatError`."""
    path = Path(path)
    report = ValidationReport(file=str(path), format="parquet")
    walker = _Walker(report, Path(images) if images is not None else None)
    for shard in ShardSet(path).paths:
        walker.shard(shard)
    report.images = len(walker.image_ids)
    return report


@dataclass
class _Checked:
    """A region whose masks decode: its stored fields and its amodal and visible masks."""

    stored: dict[str, Any]
    amodal: Mask
    visible: Mask


#: Scalar columns and the kind of type they must be stored as (a string cast to an int is not accepted).
_SCALAR_KINDS = {"height": pa.types.is_integer, "width": pa.types.is_integer,
                 **{name: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
                    for name in ("image_id", "annotation_id", "annotator", "file_name", "extra")}}


def _id(text: str | None) -> Any:
    """An id stored as JSON text, decoded (the text itself when it is not JSON)."""
    try:
        return None if text is None else json.loads(text)
    except json.JSONDecodeError:
        return text


class _Walker:
    """One pass over the rows of the shards, adding every problem to the report."""

    def __init__(self, report: ValidationReport, image_dir: Path | None) -> None:
        self.report, self.image_dir = report, image_dir
        self.keys: set[tuple[str | None, str | None, str | None]] = set()
        self.image_ids: set[str | None] = set()

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.report.add(kind, message, **where)

    def shard(self, shard: Path) -> None:
        where = {"file": shard.name}
        try:
            schema = ShardSet.schema(shard)
        except FormatError as err:
            self.add("parquet", err.message, **where)
            return
        names = schema.names
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            self.add("schema", f"not an amodaldata shard: no column(s) {', '.join(missing)}", **where)
            return
        for name in names:
            stored, kind = schema.field(name).type, _SCALAR_KINDS.get(name)
            if kind is not None and not (kind(stored) or pa.types.is_null(stored)):
                self.add("schema", f"column '{name}' is stored as {stored}, the shard type is "
                         f"{SCHEMA.field(name).type}", **where)
        try:
            for row in ShardSet.rows(shard, [f.name for f in SCHEMA if f.name in names], cast=True):
                self.row(row, shard.name)
        except pa.ArrowException as exc:
            self.add("schema", f"columns do not read as the shard types: {exc}", **where)

    # -- one row ------------------------------------------------------------------------------------
    def row(self, row: dict[str, Any], file: str) -> None:
        self.report.annotations += 1
        where = {"file": file, "image_id": _id(row["image_id"]), "annotation_id": _id(row.get("annotation_id"))}
        if row["image_id"] is None:
            self.add("schema", "row has no image_id", **where)
        key = (row["image_id"], row.get("annotation_id"), row.get("annotator"))
        if key in self.keys:
            self.add("duplicate-id", f"an earlier row has the same image id, annotation id and annotator "
                     f"({key[2]!r})", **where)
        self.keys.add(key)
        self.image_ids.add(row["image_id"])
        regions = row["regions"] or []
        self.report.regions += len(regions)
        h, w = row["height"], row["width"]
        if h is None or w is None or h <= 0 or w <= 0:
            self.add("schema", f"height and width must be positive, got {h!r} x {w!r}", **where)
            return
        self.image(row, h, w, **where)
        checked, complete = self.regions(regions, h, w, **where)
        self.given_overlaps(checked, h, w, **where)
        ids = {r["id"] for r in regions if r is not None and r["id"] is not None}
        order = self.order(row.get("order") or [], ids, **where)
        if complete and order is not None:
            self.stack(checked, order, h, w, **where)

    def image(self, row: dict[str, Any], h: int, w: int, **where: Any) -> None:
        image = row.get("image") or {}
        data = image.get("bytes")
        if data is not None:
            problem = image_problem(data, h, w)
            if problem is not None:
                self.add("image", f"embedded image {problem}", **where)
        elif self.image_dir is not None:
            name = row.get("file_name") or image.get("path")
            if not name:
                self.add("missing-image", "row has neither image bytes nor a file_name to look for", **where)
            elif not (self.image_dir / name).is_file():
                self.add("missing-image", f"{name} not found in {self.image_dir}", **where)

    # -- regions ------------------------------------------------------------------------------------
    def regions(self, regions: list[dict[str, Any]], h: int, w: int, **where: Any
                ) -> tuple[dict[int, _Checked], bool]:
        """The regions whose masks decode, by id, and whether every region did (so a stack can be built)."""
        checked: dict[int, _Checked] = {}
        seen: set[int] = set()
        complete = True
        for index, region in enumerate(regions):
            rid = region["id"] if region is not None else None
            at = {**where, "region_id": rid if rid is not None else f"#{index}"}
            if region is None:
                self.add("schema", "region is null", **at)
                complete = False
                continue
            if rid is None or rid <= 0:
                self.add("schema", f"region id must be a positive int, got {rid!r}", **at)
                complete = False
                continue
            if rid in seen:
                self.add("duplicate-id", "duplicate region id", **at)
                complete = False
                continue
            seen.add(rid)
            amodal = self.rle(region["amodal"], h, w, "amodal", **at)
            visible = self.rle(region["visible"], h, w, "visible", **at)
            if amodal is not None:
                self.amodal_fields(region, amodal, **at)
            if amodal is None or visible is None:
                complete = False
                continue
            self.visible_inside(region, amodal, visible, **at)
            checked[rid] = _Checked(region, amodal, visible)
        return checked, complete

    def rle(self, rle: dict | None, h: int, w: int, key: str, **at: Any) -> Mask | None:
        """The mask of a stored RLE whose size and counts are sound, else None (reported)."""
        if rle is None:
            self.add("rle", f"no {key} RLE", **at)
            return None
        try:
            return Mask.from_rle(rle, h, w)
        except GeometryError as err:
            self.add("rle", f"{key} RLE: {err.message}", **at)
            return None

    def amodal_fields(self, region: dict[str, Any], amodal: Mask, **at: Any) -> None:
        """The stored polygons and area against the amodal RLE."""
        polygons = region["amodal_polygons"]
        if polygons:
            try:
                drawn = Mask(amodal.height, amodal.width, polygons=normalise_polygons(polygons))
            except GeometryError as err:
                self.add("polygons-rle", f"amodal_polygons cannot be rasterised: {err.message}", **at)
            else:
                differ = _pixels_differing(drawn, amodal)
                if differ:
                    self.add("polygons-rle", f"amodal_polygons rasterise to a mask differing from the amodal RLE "
                             f"in {differ} pixel(s)", **at)
        area = region["area"]
        if area is not None and area != amodal.area():
            self.add("area", f"area {area} but the amodal mask has {amodal.area()} pixel(s)", **at)

    def visible_inside(self, region: dict[str, Any], amodal: Mask, visible: Mask, **at: Any) -> None:
        """Visible pixels outside the amodal mask: none when derived, :data:`LEAK_RELATIVE` when given."""
        both = cocomask.merge([visible.to_pycocotools(), amodal.to_pycocotools()], intersect=True)
        outside = visible.area() - int(cocomask.area(both))
        allowed = LEAK_RELATIVE * max(visible.area(), 1) if region["visible_given"] else 0
        if outside > allowed:
            self.add("visible-outside-amodal", f"{outside} of {visible.area()} visible pixel(s) lie outside the "
                     "amodal mask", **at)

    def given_overlaps(self, checked: dict[int, _Checked], h: int, w: int, **where: Any) -> None:
        """Report each region whose given visible mask overlaps an earlier region's given visible mask."""
        owner = np.zeros(h * w, dtype=np.int64)
        for rid, region in checked.items():
            if not region.stored["visible_given"]:
                continue
            pixels = _column_major_pixels(region.visible)
            taken = owner[pixels]
            others, counts = np.unique(taken[taken != 0], return_counts=True)
            for other, n in zip(others.tolist(), counts.tolist()):
                self.add("visible-overlap", f"given visible mask overlaps region {other}'s in {n} pixel(s)",
                         **where, region_id=rid)
            owner[pixels] = rid

    # -- order and layer stack ----------------------------------------------------------------------
    def order(self, edges: list[dict[str, Any]], ids: set[int], **where: Any) -> OcclusionOrder | None:
        """The row's order, or None when an edge is unusable or the order has a cycle (both reported)."""
        kept: set[tuple[int, int]] = set()
        usable = True
        for edge in edges:
            front, back = (edge["front"], edge["back"]) if edge is not None else (None, None)
            unknown = [rid for rid in (front, back) if rid not in ids]
            if unknown:
                self.add("unknown-region", f"order edge {front} -> {back} names region {unknown[0]}, which the "
                         "row does not have", **where)
                usable = False
            elif front == back:
                self.add("depth-cycle", f"order edge {front} -> {back} puts a region in front of itself",
                         **where, region_id=front)
                usable = False
            else:
                kept.add((front, back))
        order = OcclusionOrder(kept)
        cycle = order.find_cycle()
        if cycle:
            self.add("depth-cycle", DepthCycleError(cycle).message, **where)
            return None
        return order if usable else None

    def stack(self, checked: dict[int, _Checked], order: OcclusionOrder, h: int, w: int, **where: Any) -> None:
        """Stored occlusion rates and derived visible masks against the layer stack of the amodal masks."""
        regions = [Region(rid, c.amodal, depth_rank=c.stored["depth_rank"]) for rid, c in checked.items()]
        stack = Scene(id=where["image_id"], height=h, width=w, regions=regions, order=order).layers
        runs: StackRuns | None = None
        for rid, region in checked.items():
            at = {**where, "region_id": rid}
            rate, expected = region.stored["occlusion_rate"], stack.occlusion_rate(rid)
            if rate is not None and not abs(rate - expected) <= RATE_TOLERANCE:      # NaN disagrees too
                hidden = stack.area(rid) - stack.visible_area(rid)
                self.add("occlude-rate", f"occlusion_rate {rate:.6g} but the layer stack hides {hidden} of "
                         f"{stack.area(rid)} pixels ({expected:.6g})", **at)
            if not region.stored["visible_given"]:
                runs = runs or StackRuns(stack)
                differ = _pixels_differing(region.visible, Mask.from_rle(runs.visible_rle(rid), h, w))
                if differ:
                    self.add("visible-order", f"stored visible mask differs from the visible part the order "
                             f"implies in {differ} pixel(s)", **at)


def _column_major_pixels(mask: Mask) -> np.ndarray:
    """The mask's pixels as column-major flat indices, read from its RLE runs (no bitmap is decoded)."""
    from .rle import run_lengths

    runs = run_lengths(mask.to_rle()["counts"])
    starts = np.cumsum(runs) - runs
    first, lengths = starts[1::2], runs[1::2]           # runs alternate background, foreground
    placed = np.cumsum(lengths) - lengths               # where each run's pixels begin in the output
    return np.repeat(first - placed, lengths) + np.arange(int(lengths.sum()))


def _pixels_differing(a: Mask, b: Mask) -> int:
    """How many pixels two masks of one size disagree on: 0 at once when their compressed RLE texts are equal
    (equal texts are equal masks), else counted on the decoded bitmaps."""
    if a.to_rle()["counts"] == b.to_rle()["counts"]:
        return 0
    return int(np.count_nonzero(a.to_bitmap() != b.to_bitmap()))
