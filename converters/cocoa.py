"""COCOA and BSDS-amodal (Zhu et al., "Semantic Amodal Segmentation"): read into :class:`~amodaldata.Scene`,
and write Scenes back in the release's conventions (:func:`write_cocoa`).

Accepted inputs (see ``FORMATS.md``): a release file ``{"images": [...], "annotations": [...]}``, a list of
annotation objects, or one annotation object (as in the public demo data). One Scene is made per annotation
object, so BSDS's several annotators of one image stay apart (same ``Scene.id``, different ``annotator``).

Regions get ids 1..n in list order; ``order`` becomes ``depth_rank``; ``depth_constraint`` pairs (numbered by
``order`` values, not list positions) become the occlusion edges, else the ranks do, for regions whose
outlines' bounding boxes meet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from amodaldata.errors import AmodalDataError, AnnotationError, ErrorPolicy, OnError
from amodaldata.images import check_image, check_size
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.stack_runs import StackRuns

from .encoding import IdAllocator, image_record, segmentation
from .jsonio import CocoLayoutWriter, iter_json
from .losses import LossReport, Written
from .records import IMAGE_FIELDS, image_file, require

#: The region fields of the amodal, visible and hidden masks.
AMODAL, VISIBLE, INVISIBLE = "segmentation", "visible_mask", "invisible_mask"
#: Region fields the model holds; any other field rides in ``Region.extra``.
REGION_FIELDS = {AMODAL, "name", "isStuff", "order", VISIBLE, INVISIBLE, "area",
                 "occlude_rate"}
#: Annotation fields the model holds; any other field rides in ``Scene.extra``.
ANNOTATION_FIELDS = {"id", "image_id", "author", "regions", "depth_constraint"}


def read_cocoa(path: str | Path, images: str | Path | None = None, *, on_error: OnError | ErrorPolicy = "fail",
               load_images: bool = False) -> Iterator[Scene]:
    """Yield one Scene per COCOA/BSDS annotation object of ``path``.

    Args:
        path: the annotation JSON.
        images: folder of the image files; needed when the file has no ``images`` list (the size is then read
            from the image) and when ``load_images`` is set. A named image missing there is an error.
        on_error: ``"fail"`` raises the first error; ``"skip"`` drops the bad annotation and records it in the
            policy (pass an :class:`ErrorPolicy` to read the skips afterwards).
        load_images: attach the image file's bytes to each Scene (``Scene.image_bytes``).
    """
    policy = on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy(on_error)
    path = Path(path)
    image_dir = Path(images) if images is not None else None
    by_id: dict[Any, dict] = {}
    for kind, value in _stream(path):
        if kind == "images":
            for record in value:
                try:
                    image_id = require(record, "id", (int, str), "image record")
                    for key in ("width", "height"):
                        require(record, key, int, f"image record {image_id}")
                    check_size(record["height"], record["width"])
                except AmodalDataError as err:
                    policy.handle(err.located(file=str(path),
                                              image_id=record.get("id") if isinstance(record, dict) else None))
                    continue
                by_id[image_id] = record
            continue
        ann = value
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        try:
            yield _scene_from_annotation(ann, by_id, path, image_dir, load_images)
        except AmodalDataError as err:
            policy.handle(err.located(file=str(path), image_id=image_id, annotation_id=ann_id))


def _stream(path: Path) -> Iterator[tuple[str, Any]]:
    """``("images", records)`` once, then ``("annotation", object)`` per annotation, parsed one at a time.

    The release layout is streamed when its ``images`` list comes before ``annotations`` (as written by
    :func:`write_cocoa`); otherwise the annotations read before the images list are held until it arrives.
    A bare list of annotations and a single annotation object are accepted too.
    """
    images: list | None = None
    pending: list = []
    top: dict[str, Any] = {}
    saw_annotations = is_list = False
    for kind, key, value in iter_json(path, stream=("annotations",)):
        if key is None:
            if kind == "value":
                break
            if not is_list:
                is_list, images = True, []
                yield "images", images
            if kind == "item":
                yield "annotation", value
        elif key == "annotations":
            saw_annotations = True
            if kind == "start":
                continue
            if kind == "value":
                raise AnnotationError("'images' and 'annotations' must be lists", file=str(path))
            if images is None:
                pending.append(value)
            else:
                yield "annotation", value
        elif key == "images":
            if not isinstance(value, list):
                raise AnnotationError("'images' and 'annotations' must be lists", file=str(path))
            images = value
            yield "images", images
            for ann in pending:
                yield "annotation", ann
            pending = []
        else:
            top[key] = value
    if is_list:
        return
    if saw_annotations:
        if images is None:
            yield "images", []
            for ann in pending:
                yield "annotation", ann
    elif "regions" in top and images is None:
        yield "images", []
        yield "annotation", top
    else:
        raise AnnotationError("not a COCOA file: expected 'annotations', a list of annotations or one "
                              "annotation with 'regions'", file=str(path))


def _scene_from_annotation(ann: Any, images: dict[Any, dict], path: Path, image_dir: Path | None,
                           load_images: bool) -> Scene:
    image_id = require(ann, "image_id", (int, str), "annotation")
    regions_in = require(ann, "regions", list, "annotation")
    record = images.get(image_id)
    if images and record is None:
        raise AnnotationError("annotation names an image the 'images' list does not have")
    image_path = image_file(record, ann, path, image_dir) if (image_dir is not None and
                                                              (load_images or record is None)) else None
    if record is not None:
        height, width = record["height"], record["width"]
    elif image_path is not None:
        from PIL import Image

        check_image(image_path.read_bytes(), None, None, file=image_path)
        with Image.open(image_path) as im:
            width, height = im.size
    else:
        raise AnnotationError("the image size is unknown: the file has no 'images' list; pass the image folder")

    regions: list[Region] = []
    for index, raw in enumerate(regions_in):
        rid = index + 1
        try:
            regions.append(_region(raw, rid, height, width))
        except AmodalDataError as err:
            raise err.located(region_id=_region_name(raw, rid))
    ranks = {r.id: r.depth_rank for r in regions if r.depth_rank is not None}
    constraint = ann.get("depth_constraint")
    if constraint is not None and not isinstance(constraint, str):
        raise AnnotationError(f"'depth_constraint' must be a string, got {type(constraint).__name__}")
    if constraint:
        rank_to_id: dict[int, int] = {}
        for r in regions:
            if r.depth_rank is not None:
                if r.depth_rank in rank_to_id:
                    raise AnnotationError(f"two regions have order {r.depth_rank}", region_id=r.id)
                rank_to_id[r.depth_rank] = r.id
        order = depth_constraint_order(constraint, rank_to_id)
    else:
        order = OcclusionOrder.from_ranks(ranks, _boxes_meeting([r for r in regions if r.id in ranks]))
    scene_extra = {k: v for k, v in ann.items() if k not in ANNOTATION_FIELDS}
    if record is not None:
        scene_extra["image"] = {k: v for k, v in record.items() if k not in IMAGE_FIELDS}
    scene = Scene(
        id=image_id, height=int(height), width=int(width), regions=regions, order=order,
        file_name=(record or {}).get("file_name") or (image_path.name if image_path else None),
        image_bytes=image_path.read_bytes() if (load_images and image_path is not None) else None,
        annotator=ann.get("author"), annotation_id=ann.get("id"), extra=scene_extra,
    )
    scene.order.front_to_back([r.id for r in regions], tie_break=ranks)   # refuse cycles while reading
    return scene


def _region_name(raw: Any, rid: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("order"), int):
        return f"{rid} (order {raw['order']})"
    return str(rid)


def _region(raw: Any, rid: int, height: int, width: int) -> Region:
    segmentation = require(raw, AMODAL, (list, dict), "region")
    amodal = Mask.from_segmentation(segmentation, height, width)
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise AnnotationError(f"'name' must be a string, got {type(name).__name__}")
    is_stuff = raw.get("isStuff", 0)
    if is_stuff not in (0, 1, True, False):
        raise AnnotationError(f"'isStuff' must be 0 or 1, got {is_stuff!r}")
    rank = raw.get("order")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise AnnotationError(f"'order' must be a positive int, got {rank!r}")
    visible = raw.get(VISIBLE)
    visible_mask = Mask.from_rle(visible, height, width) if visible is not None else None
    invisible = raw.get(INVISIBLE)
    if invisible is not None:
        # its size is checked; the mask itself is derived again from the layer stack, so it is not decoded
        Mask.from_rle(invisible, height, width, check_counts=False)
    return Region(id=rid, amodal=amodal, name=name, is_stuff=bool(is_stuff), visible=visible_mask,
                  depth_rank=rank, extra={k: v for k, v in raw.items() if k not in REGION_FIELDS})


def depth_constraint_order(text: str, rank_to_id: dict[int, int]) -> OcclusionOrder:
    """COCOA's ``depth_constraint``: comma-separated ``"a-b"`` pairs (a occludes b).

    The numbers are ``order`` values, not list positions; ``rank_to_id`` maps them to region ids.
    """
    edges = set()
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        parts = item.split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise AnnotationError(f"depth_constraint item {item!r} is not of the form 'a-b'")
        a, b = (int(p) for p in parts)
        for rank in (a, b):
            if rank not in rank_to_id:
                raise AnnotationError(f"depth_constraint {item!r} names order {rank}, which no region has")
        edges.add((rank_to_id[a], rank_to_id[b]))
    return OcclusionOrder(edges)


def _boxes_meeting(regions: list[Region]) -> list[tuple[int, int]]:
    """Pairs of regions whose amodal bounding boxes intersect (a cheap superset of the overlapping pairs)."""
    boxes = [(r.id, r.amodal.bbox()) for r in regions]
    pairs = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(boxes):
        for b, (bx, by, bw, bh) in boxes[i + 1:]:
            if ax <= bx + bw and bx <= ax + aw and ay <= by + bh and by <= ay + ah:
                pairs.append((a, b))
    return pairs


# -- writing -------------------------------------------------------------------------------------------
def write_cocoa(scenes: Iterable[Scene], out: str | Path, *, losses: LossReport | None = None,
                written: Written | None = None, fmt: str = "cocoa") -> int:
    """Write Scenes as a COCOA release file ``{"images": [...], "annotations": [...]}``; return the number of
    annotation objects written.

    The release's conventions (FORMATS.md, Zhu et al. Sec. 3): one annotation object per Scene, so several
    annotators of one image stay separate objects with the same ``image_id``; regions sorted front to back
    along the layer stack; ``order`` 1-based (the given ranks when they follow that order, else 1..n);
    ``area`` and ``occlude_rate`` from the stack (pycocotools pixel counts, ``occlude_rate`` the int 0 when
    unoccluded); ``visible_mask`` / ``invisible_mask`` compressed RLE only when occluded; ``depth_constraint``
    an ``"a-b"`` pair (a occludes b, numbered by the written ``order``) for every two regions whose amodal
    masks overlap; a flat polygon when a region has exactly one. Fields kept in ``extra`` are written back
    (``extra["image"]`` into the image record). A Scene with no regions and no annotation id becomes an image
    record alone. What COCOA cannot hold (category ids, visible masks that disagree with the order, ...)
    is recorded in ``losses``; ``written`` counts the Scenes and regions written.
    """
    losses = losses if losses is not None else LossReport()
    written = written if written is not None else Written()
    ids = IdAllocator()
    images: set[Any] = set()
    n = 0
    with CocoLayoutWriter(out) as writer:
        for scene in scenes:
            if scene.id not in images:
                images.add(scene.id)
                writer.image(image_record(scene))
            written.add(len(scene.regions))
            if not scene.regions and scene.annotation_id is None:
                continue
            ann_id, kept = ids.take(scene.annotation_id)
            if not kept:
                losses.add("annotation ids renumbered (duplicates)", scene.id)
            writer.annotation(_annotation_object(scene, ann_id, losses, fmt))
            n += 1
    return n


def _written_ranks(scene: Scene, front_to_back: list[int], losses: LossReport) -> list[int]:
    """The ``order`` values: the given ranks when all regions have them and they grow front to back."""
    by_id = {r.id: r for r in scene.regions}
    given = [by_id[rid].depth_rank for rid in front_to_back]
    if all(g is not None for g in given) and all(a < b for a, b in zip(given, given[1:])):  # type: ignore[operator]
        return given  # type: ignore[return-value]
    if any(g is not None for g in given):
        losses.add("depth ranks renumbered 1..n to follow the occlusion order", scene.id)
    return list(range(1, len(front_to_back) + 1))


def _annotation_object(scene: Scene, ann_id: Any, losses: LossReport, fmt: str) -> dict:
    stack = scene.layers
    runs = StackRuns(stack)
    front_to_back = list(stack.front_to_back)
    ranks = _written_ranks(scene, front_to_back, losses)
    rank_of = dict(zip(front_to_back, ranks))
    by_id = {r.id: r for r in scene.regions}
    regions = []
    for rid in front_to_back:
        region = by_id[rid]
        area = stack.area(rid)
        hidden = int(np.count_nonzero(stack.levels[rid]))
        record: dict[str, Any] = {AMODAL: segmentation(region.amodal, flat_single=True)}
        if region.name is not None:
            record["name"] = region.name
        record["area"] = area
        record["isStuff"] = int(region.is_stuff)
        visible = runs.visible_rle(rid) if hidden else None
        if hidden:
            record[VISIBLE] = visible
            record[INVISIBLE] = runs.invisible_rle(rid)
        record["occlude_rate"] = hidden / area if hidden else 0
        record["order"] = rank_of[rid]
        record.update({k: v for k, v in region.extra.items() if k not in record and k not in REGION_FIELDS})
        regions.append(record)
        _region_losses(scene, region, visible, losses, fmt)
    pairs = runs.overlapping_pairs()
    constraint = ",".join(f"{a}-{b}" for a, b in sorted((rank_of[int(f)], rank_of[int(b)]) for f, b in pairs))
    ann: dict[str, Any] = {}
    if scene.annotator is not None:
        ann["author"] = scene.annotator
    ann.update({k: v for k, v in scene.extra.items() if k not in ANNOTATION_FIELDS and k not in ("image", "size")})
    ann.update({"regions": regions, "image_id": scene.id, "id": ann_id,
                "size": scene.extra.get("size", len(regions)), "depth_constraint": constraint})
    if scene.image_bytes is not None:
        losses.add(f"embedded image bytes ({fmt} names image files, it does not hold them)", scene.id)
    return ann


def _region_losses(scene: Scene, region: Region, visible: dict | None, losses: LossReport, fmt: str) -> None:
    if region.is_crowd:
        losses.add(f"crowd flags ({fmt} has none: crowd regions are written as regions)", scene.id, region.id)
    if region.category_id is not None:
        if region.name is None:
            losses.add(f"category ids of regions without a name ({fmt} holds free-text names only; no name "
                       f"written)", scene.id, region.id)
        else:
            losses.add(f"category ids ({fmt} holds free-text names only; the name is written)",
                       scene.id, region.id)
    if region.visible is not None:
        derived = visible["counts"] if visible is not None else region.amodal.to_rle()["counts"]
        if region.visible.to_rle()["counts"] != derived:
            losses.add(f"given visible masks that disagree with the occlusion order ({fmt} stores the visible "
                       f"part the order implies)", scene.id, region.id)
    if region.amodal.polygons is None:
        losses.add(f"amodal masks without polygons, written as RLE 'segmentation' ({fmt} files hold flat "
                   f"polygons; pixel-exact)", scene.id, region.id)
