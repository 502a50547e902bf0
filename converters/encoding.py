"""Scene pieces as the JSON formats write them: masks (RLE straight from the layer stack, polygons), boxes,
overlapping region pairs, image records, unique annotation ids."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as cocomask

from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from amodaldata.scene import Scene


# -- masks ------------------------------------------------------------------------------------------------
def rle_from_pixels(flat: np.ndarray, height: int, width: int) -> dict:
    """COCO compressed RLE of the pixels at row-major flat indices ``flat`` (the layer stack's layout).

    Runs are found on the column-major indices, so the cost follows the mask's size, not the image's.
    """
    if flat.size == 0:
        counts = [height * width]
    else:
        f = np.sort((flat % width) * height + flat // width)
        breaks = np.flatnonzero(np.diff(f) != 1)
        bounds = np.empty(2 * (breaks.size + 1), dtype=np.int64)
        bounds[0::2] = np.r_[f[0], f[breaks + 1]]
        bounds[1::2] = np.r_[f[breaks], f[-1]] + 1
        counts = np.diff(np.r_[0, bounds, height * width]).tolist()
        if counts[-1] == 0:
            counts.pop()
    rle = cocomask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def visible_rle(stack: LayerStack, rid: int, height: int, width: int) -> dict:
    """The region's visible part (level 0 of the stack) as compressed RLE."""
    return rle_from_pixels(stack.pixels[rid][stack.levels[rid] == 0], height, width)


def invisible_rle(stack: LayerStack, rid: int, height: int, width: int) -> dict:
    """The region's hidden part (level > 0) as compressed RLE."""
    return rle_from_pixels(stack.pixels[rid][stack.levels[rid] > 0], height, width)


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


def overlapping_pairs(stack: LayerStack) -> np.ndarray:
    """``(P, 2)`` int array of ``(front, back)`` region ids whose amodal masks share a pixel, front per the stack."""
    k = stack.depth
    if k < 2:
        return np.zeros((0, 2), dtype=np.int64)
    ids = stack.ids.reshape(k, -1)
    fronts, backs = [], []
    for back_level in range(1, k):
        covered = ids[back_level] > 0
        back = ids[back_level][covered].astype(np.int64)
        for front_level in range(back_level):
            fronts.append(ids[front_level][covered].astype(np.int64))
            backs.append(back)
    front, back = np.concatenate(fronts), np.concatenate(backs)
    base = int(max(front.max(), back.max())) + 1
    codes = np.unique(front * base + back)
    return np.stack([codes // base, codes % base], axis=1)


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
