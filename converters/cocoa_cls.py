"""COCOA-cls (Follmann et al.): COCOA's regions as COCO instances of the 80 COCO classes.

Per instance (FORMATS.md): ``id``, ``image_id``, ``category_id``, ``bbox``, ``area``, ``iscrowd``,
``segmentation`` (amodal; polygons or RLE, both read; COCOA's single flat polygon too), ``visible_mask``,
``invisible_mask``, ``occlude_rate``. No depth order: it is derived from the visible and amodal masks.

Written as the release holds it: ``segmentation`` and ``visible_mask`` as compressed RLE for every instance
(C2F-Seg decodes both directly with ``mask_utils.decode``; polygon outlines are rasterised, pixel-exact, and
reported), ``invisible_mask`` only when occluded (COCOA's convention), ``occlude_rate`` always. Names are resolved to COCO classes by the
label map, by default the built-in ``cocoa-coco`` synonyms (:mod:`converters.labels`), then by class name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Mapping

from amodaldata.errors import ErrorPolicy, OnError
from amodaldata.scene import Scene

from .coco import InstanceLayout, read_instances, write_instances
from .labels import COCO_CATEGORIES, COCO_TABLE
from .losses import LossReport, Written

LAYOUT = InstanceLayout(
    name="cocoa-cls", amodal="segmentation", visible="visible_mask", invisible="invisible_mask",
    amodal_bbox="bbox", visible_bbox=None, occlude_rate=True, amodal_encoding="rle", visible_encoding="rle",
    table=COCO_TABLE, default_label_map="cocoa-coco",
    supercategories={i: sup for i, (_, sup) in COCO_CATEGORIES.items()},
)


def read_cocoa_cls(path: str | Path, images: str | Path | None = None, *,
                   on_error: OnError | ErrorPolicy = "fail", load_images: bool = False,
                   losses: LossReport | None = None) -> Iterator[Scene]:
    """Yield one Scene per image of a COCOA-cls file (order derived from the masks)."""
    return read_instances(path, LAYOUT, images=images, on_error=on_error, load_images=load_images, losses=losses)


def write_cocoa_cls(scenes: Iterable[Scene], out: str | Path, *,
                    label_map: str | Path | Mapping[str, int | str] | None = None,
                    losses: LossReport | None = None, written: Written | None = None) -> int:
    """Write Scenes as a COCOA-cls file; return the number of instances written."""
    return write_instances(scenes, out, LAYOUT, label_map=label_map, losses=losses, written=written)
