"""What the COCO-style amodal formats share (COCOA-cls, KINS, D2SA; COCOA's image records and masks too).

An :class:`InstanceLayout` names a format's per-instance fields; :func:`read_instances` turns a file of that
layout into Scenes (one per image, regions 1..n in annotation order), :func:`write_instances` writes Scenes
back.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import numpy as np

from amodaldata.errors import AmodalDataError, AnnotationError, ErrorPolicy, GeometryError, OnError
from amodaldata.images import check_size
from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.stack_runs import StackRuns

from .encoding import IdAllocator, TracedPolygons, bbox, image_record, segmentation
from .jsonio import CocoLayoutWriter
from .labels import CategoryTable, load_label_map, normalise, resolve
from .losses import LossReport, Written
from .records import IMAGE_FIELDS, image_file, load_json, require


# -- layouts --------------------------------------------------------------------------------------------
#: How a writer encodes a mask field: ``keep`` the encoding it arrived in, always ``rle``, always ``polygons``
#: (traced from the pixels when the mask has none, :class:`converters.encoding.TracedPolygons`).
FieldEncoding = Literal["keep", "rle", "polygons"]


@dataclass(frozen=True)
class InstanceLayout:
    """The per-instance fields of a COCO-style amodal format, and their encodings in the real release
    (FORMATS.md).

    Attributes:
        name: format name (for messages).
        amodal: key of the amodal segmentation; visible / invisible: keys of the visible / hidden masks
            (``invisible`` None: not stored).
        amodal_bbox / visible_bbox: keys of the boxes (``visible_bbox`` None: not stored).
        occlude_rate: whether ``occlude_rate`` is stored.
        amodal_encoding / visible_encoding: how the amodal / visible masks are written.
        area / visible_area: keys of the amodal and visible pixel counts (``visible_area`` None: not stored);
            ``area_fallback``: read-side spelling of ``area`` some copies use (KINS 2020: plain ``area``).
        float_area: areas written as floats (D2SA) rather than ints.
        crowd_bool: ``iscrowd`` (:attr:`Region.is_crowd`) written as a JSON bool (D2SA) rather than 0 / 1.
        native: further per-instance fields of the release, written back from ``Region.extra`` when a
            Scene carries them; any other unmodelled field has no place in the format and is reported lost.
        table: the format's category table, None when it is read from the file (D2SA).
        default_label_map: label map used when the caller gives none (COCOA-cls: COCOA names -> COCO).
        supercategories: written with the table's categories (COCO's).
    """

    name: str
    amodal: str
    visible: str
    invisible: str | None
    amodal_bbox: str
    visible_bbox: str | None
    occlude_rate: bool
    amodal_encoding: FieldEncoding = "keep"
    visible_encoding: FieldEncoding = "rle"
    area: str = "area"
    visible_area: str | None = None
    area_fallback: str | None = None
    float_area: bool = False
    crowd_bool: bool = False
    native: frozenset[str] = frozenset({"id"})
    table: CategoryTable | None = None
    default_label_map: str | None = None
    supercategories: Mapping[int, str] = field(default_factory=dict)

    @property
    def modelled(self) -> set[str]:
        """Fields read into the Scene model (or derived again when written), never carried in ``extra``."""
        keys = {self.amodal, self.visible, self.invisible, self.amodal_bbox, self.visible_bbox, self.area,
                self.visible_area, self.area_fallback, "occlude_rate", "category_id", "image_id", "iscrowd"}
        return {k for k in keys if k is not None}


#: Orders a scene's regions: given the raw annotations (same order as the regions) and the regions.
OrderFn = Callable[[list[dict], list[Region]], OcclusionOrder]


def derived_order(raw: list[dict], regions: list[Region]) -> OcclusionOrder:
    """The order derived from visible and amodal masks (:meth:`OcclusionOrder.from_masks`)."""
    return OcclusionOrder.from_masks(regions)


def _categories(data: dict, path: Path) -> dict[int, str]:
    cats = data.get("categories")
    if cats is None:
        return {}
    if not isinstance(cats, list):
        raise AnnotationError("'categories' must be a list", file=str(path))
    out = {}
    for cat in cats:
        cid = require(cat, "id", int, "category")
        name = require(cat, "name", str, f"category {cid}")
        out[cid] = name
    return out


def read_instances(path: str | Path, layout: InstanceLayout | Callable[[dict], InstanceLayout],
                   order: OrderFn = derived_order, *,
                   images: str | Path | None = None, on_error: OnError | ErrorPolicy = "fail",
                   load_images: bool = False, losses: LossReport | None = None) -> Iterator[Scene]:
    """Yield one Scene per image record of a COCO-style file, in the file's image order.

    ``layout`` may be a function of the parsed file (KINS picks its release by the fields present). Region
    names come from the file's ``categories`` list, else from the layout's table. An annotation naming
    an image the ``images`` list does not have is an error (skipped alone under ``skip``); a bad annotation
    fails its whole image. Top-level fields other than images, annotations and categories are reported in
    ``losses`` (they have no place in a Scene).
    """
    policy = on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy(on_error)
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) \
            or not isinstance(data.get("images"), list):
        name = layout.name if isinstance(layout, InstanceLayout) else "COCO-style"
        raise AnnotationError(f"not a {name} file: expected an object with 'images' and 'annotations' "
                              "lists", file=str(path))
    if not isinstance(layout, InstanceLayout):
        layout = layout(data)
    names = _categories(data, path) or (dict(layout.table.names) if layout.table else {})
    dropped = sorted(set(data) - {"images", "annotations", "categories"})
    if dropped and losses is not None:
        losses.add(f"file-level fields not carried into scenes ({', '.join(dropped)})")
    image_dir = Path(images) if images is not None else None

    records: dict[Any, dict] = {}
    for record in data["images"]:
        try:
            image_id = require(record, "id", (int, str), "image record")
            for key in ("width", "height"):
                require(record, key, int, f"image record {image_id}")
            check_size(record["height"], record["width"])
            if image_id in records:
                raise AnnotationError("duplicate image id", image_id=image_id)
        except AmodalDataError as err:
            policy.handle(err.located(file=str(path), image_id=record.get("id") if isinstance(record, dict) else None))
            continue
        records[image_id] = record

    by_image: dict[Any, list[dict]] = defaultdict(list)
    first_image: dict[Any, Any] = {}            # annotation id -> the image of its first annotation
    duplicates: dict[Any, AmodalDataError] = {}  # image id -> the error of its first duplicated annotation id
    for ann in data["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        try:
            require(ann, "image_id", (int, str), "annotation")
            if image_id not in records:
                raise AnnotationError("annotation names an image the 'images' list does not have")
        except AmodalDataError as err:
            policy.handle(err.located(file=str(path), image_id=image_id, annotation_id=ann_id))
            continue
        if isinstance(ann_id, (int, str)) and not isinstance(ann_id, bool):
            if ann_id in first_image and image_id not in duplicates:
                duplicates[image_id] = AnnotationError(
                    f"duplicate annotation id (image {first_image[ann_id]} has an annotation with that id)",
                    file=str(path), image_id=image_id, annotation_id=ann_id)
            first_image.setdefault(ann_id, image_id)
        by_image[image_id].append(ann)

    for image_id, record in records.items():
        if image_id in duplicates:
            policy.handle(duplicates[image_id])
            continue
        try:
            yield _scene(record, by_image.get(image_id, []), layout, order, names, path, image_dir, load_images)
        except AmodalDataError as err:
            policy.handle(err.located(file=str(path), image_id=image_id))


def _scene(record: dict, anns: list[dict], layout: InstanceLayout, order: OrderFn, names: dict[int, str],
           path: Path, image_dir: Path | None, load_images: bool) -> Scene:
    height, width = record["height"], record["width"]
    regions = []
    for index, ann in enumerate(anns):
        try:
            regions.append(_region(ann, index + 1, layout, names, height, width))
        except AmodalDataError as err:
            raise err.located(annotation_id=ann.get("id"), region_id=index + 1)
    image_path = None
    if load_images and image_dir is not None:
        image_path = image_file(record, {}, path, image_dir)
    extra = {k: v for k, v in record.items() if k not in IMAGE_FIELDS}
    scene = Scene(id=record["id"], height=height, width=width, regions=regions, order=order(anns, regions),
                  file_name=record.get("file_name"),
                  image_bytes=image_path.read_bytes() if image_path is not None else None,
                  extra={"image": extra} if extra else {})
    scene.order.front_to_back([r.id for r in regions])     # refuse cycles while reading
    return scene


def _field_mask(segmentation: Any, key: str, height: int, width: int) -> Mask:
    """The mask of one field (RLE or polygons, validated by :class:`Mask`), its errors naming the field."""
    try:
        return Mask.from_segmentation(segmentation, height, width)
    except GeometryError as err:
        raise GeometryError(f"'{key}': {err.message}") from None


def _region(ann: dict, rid: int, layout: InstanceLayout, names: dict[int, str], height: int,
            width: int) -> Region:
    amodal = _field_mask(require(ann, layout.amodal, (list, dict), "annotation"), layout.amodal, height, width)
    category_id = ann.get("category_id")
    if category_id is not None and (not isinstance(category_id, int) or isinstance(category_id, bool)):
        raise AnnotationError(f"'category_id' must be int, got {type(category_id).__name__}")
    if category_id is not None and names and category_id not in names:
        raise AnnotationError(f"category_id {category_id} is not in the file's categories")
    visible = ann.get(layout.visible)
    if visible is not None and not isinstance(visible, (list, dict)):
        raise AnnotationError(f"'{layout.visible}' must be RLE or polygons, got {type(visible).__name__}")
    if visible == []:                     # an instance with no visible pixel, as a polygon list
        visible_mask: Mask | None = Mask.from_rle({"size": [height, width], "counts": [height * width]},
                                                 height, width)
    else:
        visible_mask = _field_mask(visible, layout.visible, height, width) if visible is not None else None
    if layout.invisible is not None and ann.get(layout.invisible) is not None:   # checked; derived when written
        _field_mask(ann[layout.invisible], layout.invisible, height, width)
    crowd = ann.get("iscrowd", 0)
    if not isinstance(crowd, (bool, int)) or crowd not in (0, 1):
        raise AnnotationError(f"'iscrowd' must be 0 / 1 or a bool, got {crowd!r}")
    return Region(id=rid, amodal=amodal, name=names.get(category_id) if category_id is not None else None,
                  category_id=category_id, is_crowd=bool(crowd), visible=visible_mask,
                  extra={k: v for k, v in ann.items() if k not in layout.modelled})


# -- writing -------------------------------------------------------------------------------------------
def write_instances(scenes: Iterable[Scene], out: str | Path, layout: InstanceLayout, *,
                    label_map: str | Path | Mapping[str, int | str] | None = None,
                    losses: LossReport | None = None, written: Written | None = None,
                    order_fields: Callable[[Scene, list[int], np.ndarray], dict[int, dict]] | None = None
                    ) -> int:
    """Write Scenes as a COCO-style file of ``layout``; return the number of annotations written.

    Each region becomes one annotation, front to back, its fields and encodings those of the real release
    (:class:`InstanceLayout`); its category is resolved in the layout's table
    (:func:`converters.labels.resolve`), or for a table-less layout taken from the region (label map ids
    first). Regions without a category, further annotations of an already written image, masks traced into
    polygons (with the worst IoU), and every field the layout cannot hold are recorded in ``losses``;
    ``written`` counts the images and annotations written. ``order_fields(scene, front_to_back, overlapping
    pairs)`` adds per-region order fields (KINS 2020).
    """
    losses = losses if losses is not None else LossReport()
    written = written if written is not None else Written()
    mapping = load_label_map(label_map) if label_map is not None else (
        load_label_map(layout.default_label_map) if layout.default_label_map else None)
    fmt = layout.name
    traced = {key: TracedPolygons(key, fmt) for key in (layout.amodal, layout.visible)}
    ids = IdAllocator()
    written_images: set[Any] = set()
    seen_categories: dict[int, str | None] = {}
    n = 0
    with CocoLayoutWriter(out) as writer:
        for scene in scenes:
            if scene.id in written_images:
                losses.add(f"further annotations of an image already written ({fmt} holds one per image; the "
                           f"first is kept)", scene.id)
                continue
            written_images.add(scene.id)
            writer.image(image_record(scene))
            _scene_losses(scene, fmt, layout, losses, order_fields is not None)
            stack = scene.layers
            runs = StackRuns(stack)
            by_id = {r.id: r for r in scene.regions}
            front_to_back = list(stack.front_to_back)
            extra_fields = order_fields(scene, front_to_back, runs.overlapping_pairs()) if order_fields else {}
            regions = 0
            for rid in front_to_back:
                region = by_id[rid]
                cid, how = _category(region, layout, mapping)
                if cid is None:
                    losses.add(f"regions without a {fmt} category, not written (map names with --label-map)",
                               scene.id, rid, detail=how)
                    continue
                _label_losses(region, cid, how, layout, seen_categories, losses, scene.id)
                _region_losses(region, layout, losses, scene.id)
                writer.annotation(_annotation(scene, region, stack, runs, cid, layout, ids, losses, traced,
                                              extra_fields.get(rid, {})))
                regions += 1
            n += regions
            written.add(regions)
        writer.tail["categories"] = _category_list(layout, seen_categories)
    for tracer in traced.values():
        tracer.report(losses)
    return n


def _category(region: Region, layout: InstanceLayout, mapping: Mapping[str, int | str] | None
              ) -> tuple[int | None, str]:
    if layout.table is not None:
        return resolve(region.name, region.category_id, layout.table, mapping)
    if region.name is not None and mapping:
        mapped = mapping.get(normalise(region.name))
        if isinstance(mapped, int):
            return mapped, "label map"
        if mapped is not None:
            return None, f"{layout.name} has no category table: label map values must be category ids"
    if region.category_id is not None:
        return region.category_id, "id"
    return None, "no category id" if region.name is None else f"no category id for {region.name.strip()!r}"


def _label_losses(region: Region, cid: int, how: str, layout: InstanceLayout,
                  seen: dict[int, str | None], losses: LossReport, image_id: Any) -> None:
    fmt = layout.name
    if layout.table is not None:
        target = layout.table.names[cid]
        seen.setdefault(cid, target)
        if region.name is not None and normalise(region.name) != normalise(target):
            losses.add(f"free-text names replaced by {fmt} category names (via {how})", image_id, region.id,
                       detail=f"{region.name.strip()!r} -> {target!r}")
        elif region.name is None and how == "id":
            losses.add(f"regions with a category id but no name: the id was taken to be of {fmt}'s table",
                       image_id, region.id)
        return
    name = region.name.strip() if region.name is not None else None
    if cid not in seen or seen[cid] is None:
        seen[cid] = name
    elif name is not None and normalise(seen[cid] or "") != normalise(name):
        losses.add("names differing from their category's name (the first name of each id is kept)",
                   image_id, region.id)


def _region_losses(region: Region, layout: InstanceLayout, losses: LossReport, image_id: Any) -> None:
    fmt = layout.name
    if region.is_stuff:
        losses.add(f"thing/stuff flag ({fmt} has none: stuff regions are written as instances)",
                   image_id, region.id)
    if layout.amodal_encoding == "rle" and region.amodal.polygons is not None:
        losses.add(f"amodal outlines written as RLE in '{layout.amodal}' ({fmt} holds RLE; pixel-exact, the "
                   f"polygon vertices are not kept)", image_id, region.id)
    if layout.visible_encoding == "rle" and region.visible is not None and region.visible.polygons is not None:
        losses.add(f"visible outlines written as RLE in '{layout.visible}' ({fmt} holds RLE; pixel-exact, the "
                   f"polygon vertices are not kept)", image_id, region.id)
    fields = sorted(k for k in region.extra if k not in layout.native and k not in layout.modelled)
    for key in fields:
        losses.add(f"instance fields with no place in {fmt}, not written", image_id, region.id, detail=key)


def _scene_losses(scene: Scene, fmt: str, layout: InstanceLayout, losses: LossReport,
                  holds_order: bool) -> None:
    if scene.order.edges and not holds_order:
        losses.add(f"occlusion orders not stored ({fmt} has none; its readers derive the order from the visible "
                   f"masks)", scene.id)
    fields = sorted(k for k in scene.extra if k != "image")
    if fields:
        losses.add(f"annotation-level fields with no place in {fmt} ({', '.join(fields)})", scene.id)
    if scene.annotator is not None:
        losses.add(f"annotator names ({fmt} has no annotator field)", scene.id)
    if scene.image_bytes is not None:
        losses.add(f"embedded image bytes ({fmt} names image files, it does not hold them)", scene.id)


def _encoded(mask: Mask, encoding: FieldEncoding, tracer: TracedPolygons, losses: LossReport, scene: Scene,
             region: Region) -> Any:
    """A mask as ``encoding`` writes it (see :data:`FieldEncoding`); an empty polygon list is reported."""
    if encoding == "rle":
        return dict(mask.to_rle())
    if encoding == "keep":
        return segmentation(mask)
    polygons = tracer.polygons(mask, scene.id, region.id)
    if not polygons:
        losses.add(f"empty masks written as an empty polygon list in '{tracer.field}' (loaders that rasterise "
                   f"it with frPyObjects fail on it)", scene.id, region.id)
    return polygons


def _annotation(scene: Scene, region: Region, stack: LayerStack, runs: StackRuns, cid: int,
                layout: InstanceLayout, ids: IdAllocator, losses: LossReport,
                traced: dict[str, TracedPolygons], order_extra: dict) -> dict:
    h, w = scene.height, scene.width
    rid = region.id
    ann_id, kept = ids.take(region.extra.get("id"))
    if not kept:
        losses.add("annotation ids renumbered (duplicates)", scene.id, rid)
    area = stack.area(rid)
    hidden_bitmap = None
    if region.visible is not None:        # a given visible mask (KINS, D2SA...) may differ from the stack's
        visible_mask = region.visible
        hidden_bitmap = region.amodal.to_bitmap() & ~visible_mask.to_bitmap()
        hidden = int(np.count_nonzero(hidden_bitmap))
    else:
        visible_mask = Mask.from_rle(runs.visible_rle(rid), h, w)
        hidden = int(np.count_nonzero(stack.levels[rid]))
    number = float if layout.float_area else int
    ann: dict[str, Any] = {"id": ann_id, "image_id": scene.id, "category_id": cid,
                           layout.amodal: _encoded(region.amodal, layout.amodal_encoding, traced[layout.amodal],
                                                   losses, scene, region),
                           layout.amodal_bbox: bbox(region.amodal, pixels=layout.amodal_encoding == "rle"),
                           layout.area: number(area),
                           "iscrowd": region.is_crowd if layout.crowd_bool else int(region.is_crowd),
                           layout.visible: _encoded(visible_mask, layout.visible_encoding, traced[layout.visible],
                                                    losses, scene, region)}
    if layout.visible_bbox is not None:
        ann[layout.visible_bbox] = bbox(visible_mask, pixels=layout.visible_encoding == "rle")
    if layout.visible_area is not None:
        ann[layout.visible_area] = number(visible_mask.area())
    if layout.invisible is not None and hidden:
        ann[layout.invisible] = dict(Mask.from_bitmap(hidden_bitmap).to_rle()) if hidden_bitmap is not None \
            else runs.invisible_rle(rid)
    if layout.occlude_rate:
        ann["occlude_rate"] = hidden / area if hidden else (0.0 if layout.float_area else 0)
    ann.update(order_extra)
    ann.update({k: v for k, v in region.extra.items() if k not in ann and k in layout.native})
    return ann


def _category_list(layout: InstanceLayout, seen: dict[int, str | None]) -> list[dict]:
    if layout.table is not None:
        out = []
        for cid, name in layout.table.names.items():
            entry: dict[str, Any] = {"id": cid, "name": name}
            if cid in layout.supercategories:
                entry["supercategory"] = layout.supercategories[cid]
            out.append(entry)
        return out
    return [{"id": cid, "name": name} for cid, name in sorted(seen.items()) if name is not None] + \
        [{"id": cid} for cid, name in sorted(seen.items()) if name is None]
