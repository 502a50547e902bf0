"""Scene pieces as the JSON formats write them: polygons, boxes, image records, unique annotation ids.
(Visible / hidden masks and overlapping pairs come from :class:`amodaldata.stack_runs.StackRuns`.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amodaldata.masks import Mask, iou_matrix, trace_polygons
from amodaldata.scene import Scene

from .losses import LossReport


def segmentation(mask: Mask, flat_single: bool = False) -> Any:
    """A mask as written: its polygons (one flat list when ``flat_single`` and there is one), else its RLE."""
    if mask.polygons is None:
        return dict(mask.to_rle())
    if flat_single and len(mask.polygons) == 1:
        return list(mask.polygons[0])
    return [list(p) for p in mask.polygons]


@dataclass
class TracedPolygons:
    """Masks of one field that arrived without polygons and were traced into polygons
    (:func:`amodaldata.masks.trace_polygons`), with the worst IoU of their rasterisation against the mask."""

    field: str
    fmt: str
    count: int = 0
    worst: float = 1.0
    worst_at: tuple[Any, Any] = (None, None)

    def polygons(self, mask: Mask, image_id: Any, region_id: Any) -> list[list[float]]:
        """The mask's own polygons, else traced ones (counted; the IoU of their rasterisation measured).
        An empty mask has none: ``[]``."""
        if mask.polygons is not None:
            return [list(p) for p in mask.polygons]
        polygons = trace_polygons(mask)
        if not polygons:
            return []
        traced = Mask(mask.height, mask.width, polygons=polygons)
        iou = 1.0 if traced == mask else float(iou_matrix([traced], [mask])[0, 0])
        self.count += 1
        if iou < self.worst or self.worst_at == (None, None):
            self.worst, self.worst_at = min(iou, self.worst), (image_id, region_id)
        return polygons

    def report(self, losses: LossReport) -> None:
        """One ``lost:`` line: how many masks were traced, and the worst IoU (located)."""
        if self.count:
            exact = "pixel-exact" if self.worst == 1.0 else "not pixel-exact"
            losses.add(f"masks without polygons traced into polygons for '{self.field}' ({self.fmt} holds "
                       f"polygons; {exact}, worst IoU {self.worst:.4f})", *self.worst_at, n=self.count)


def bbox(mask: Mask, pixels: bool = False) -> list[float]:
    """``[x, y, w, h]``: from the polygon coordinates when polygons, else (or with ``pixels``: the box of the
    mask written as RLE) pycocotools ``toBbox``."""
    if pixels and mask.polygons is not None:
        mask = Mask(mask.height, mask.width, rle=mask.to_rle())
    return [float(v) for v in mask.bbox()]


# -- images ---------------------------------------------------------------------------------------------
def image_record(scene: Scene) -> dict:
    """The image record of a scene: id, file_name, width, height, then the fields kept in ``extra["image"]``."""
    record: dict[str, Any] = {"id": scene.id}
    if scene.file_name is not None:
        record["file_name"] = scene.file_name
    record["width"], record["height"] = scene.width, scene.height
    image_extra = scene.extra.get("image")
    if isinstance(image_extra, dict):
        record.update({k: v for k, v in image_extra.items() if k not in record})
    return record


class IdAllocator:
    """Unique annotation ids: a wanted id is kept when still free, else the next free int is given."""

    def __init__(self) -> None:
        self.used: set[Any] = set()
        self.next = 1

    def take(self, wanted: Any = None) -> tuple[Any, bool]:
        """The id to write and whether it is the wanted one."""
        if wanted is not None and wanted not in self.used and not isinstance(wanted, bool):
            self.used.add(wanted)
            if isinstance(wanted, int) and wanted >= self.next:
                self.next = wanted + 1
            return wanted, True
        while self.next in self.used:
            self.next += 1
        self.used.add(self.next)
        return self.next, wanted is None
