"""Scene pieces as the JSON formats write them: polygons, boxes, image records, unique annotation ids.
(Visible / hidden masks and overlapping pairs come from :class:`amodaldata.stack_runs.StackRuns`.)"""

from __future__ import annotations

from typing import Any

from amodaldata.masks import Mask
from amodaldata.scene import Scene


def segmentation(mask: Mask, flat_single: bool = False) -> Any:
    """A mask as written: its polygons (one flat list when ``flat_single`` and there is one), else its RLE."""
    if mask.polygons is None:
        return dict(mask.to_rle())
    if flat_single and len(mask.polygons) == 1:
        return list(mask.polygons[0])
    return [list(p) for p in mask.polygons]


def bbox(mask: Mask) -> list[float]:
    """``[x, y, w, h]`` (from the polygon coordinates when polygons, else pycocotools ``toBbox``)."""
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
