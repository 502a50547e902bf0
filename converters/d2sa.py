"""D2SA (MVTec D2S amodal, Follmann et al., WACV 2019): COCO-style instances of 60 grocery categories.

Per instance (FORMATS.md): ``segmentation`` (amodal; polygons or RLE, both read), ``bbox``, ``area``,
``visible_mask``, optional ``invisible_mask`` and ``occlude_rate``, ``iscrowd``, ``occl_depth``, ``amodal_region``,
``amodal_base``. No depth order: derived from the masks. Read by aistron (``datasets/prepare_d2sa.py``) and
VRSP (``detectron2/data/datasets/d2sa.py``).

The category names are read from the file's ``categories`` list; none are built in (public copies of the
table disagree on several names, so none could be confirmed). Writing lists the categories the Scenes carry
(id and the name the regions hold; an id whose regions have no name is listed without one), with
``visible_mask`` (RLE) for every instance, ``invisible_mask`` when occluded, ``occlude_rate`` always, ``area``
and ``occlude_rate`` as floats and ``iscrowd`` a bool as in the release; ``occl_depth``, ``amodal_region`` and
``amodal_base`` are written back when the Scenes carry them (read from a D2SA file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Mapping

from amodaldata.errors import ErrorPolicy, OnError
from amodaldata.scene import Scene

from .coco import InstanceLayout, read_instances, write_instances
from .losses import LossReport, Written

LAYOUT = InstanceLayout(
    name="d2sa", amodal="segmentation", visible="visible_mask", invisible="invisible_mask",
    amodal_bbox="bbox", visible_bbox=None, occlude_rate=True, float_area=True, crowd_bool=True,
    native=frozenset({"id", "occl_depth", "amodal_region", "amodal_base"}), table=None,
)


def read_d2sa(path: str | Path, images: str | Path | None = None, *, on_error: OnError | ErrorPolicy = "fail",
              load_images: bool = False, losses: LossReport | None = None) -> Iterator[Scene]:
    """Yield one Scene per image of a D2SA file (order derived from the masks)."""
    return read_instances(path, LAYOUT, images=images, on_error=on_error, load_images=load_images, losses=losses)


def write_d2sa(scenes: Iterable[Scene], out: str | Path, *,
               label_map: str | Path | Mapping[str, int | str] | None = None,
               losses: LossReport | None = None, written: Written | None = None) -> int:
    """Write Scenes as a D2SA file; ``label_map`` values must be category ids. Returns the instance count."""
    return write_instances(scenes, out, LAYOUT, label_map=label_map, losses=losses, written=written)
