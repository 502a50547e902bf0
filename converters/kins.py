"""KINS (Qi et al., "Amodal Instance Segmentation with KINS Dataset", CVPR 2019): both releases.

- Original ``instances_{train,val}.json``: ``segmentation`` (amodal polygons), ``bbox``, ``area``,
  ``inmodal_seg`` (visible, RLE), ``inmodal_bbox``, ``iscrowd``, ``category_id``. No order: it is derived from
  the visible and amodal masks (:meth:`OcclusionOrder.from_masks`).
- 2020 ``update_{train,test}_2020.json``: ``a_segm`` / ``i_segm`` (amodal / visible polygons), ``a_bbox``,
  ``i_bbox``, ``oco_id`` (occlusion cluster), ``ico_id`` (rank inside the cluster: 0 = overlaps nothing, then
  growing each time the instance is occluded). For two overlapping instances of one cluster the lower
  ``ico_id`` is in front; pairs it leaves open (equal or missing ids) are derived from the masks.

The reader tells the releases apart by the fields of the first annotation; it accepts polygons or RLE in
every mask field (an empty ``i_segm`` list is an instance with no visible pixel) and, in the 2020 release,
``a_area`` / ``i_area`` or plain ``area``. Writers produce what each release holds (FORMATS.md): ``kins``
writes ``segmentation`` as polygons and ``inmodal_seg`` as RLE; ``kins-2020`` writes ``a_segm`` and
``i_segm`` as polygons (C2F-Seg reads both with ``frPyObjects`` + ``merge``), ``a_area`` / ``i_area``, and
``oco_id`` / ``ico_id`` on every instance (VINV's loader requires ``ico_id``).
A mask without polygons (an RLE source, a visible part derived from the order) is traced into polygons whose
rasterisation is the mask (:func:`amodaldata.masks.trace_polygons`; the worst IoU is reported). The
2020 layout has ``oco_id`` the connected
components of overlapping instances (numbered through the file; an instance overlapping nothing has its own
cluster and ``ico_id`` 0) and ``ico_id`` 1 + the longest chain of instances in front of it, so every
overlapping pair reads back in the same order. Categories: :data:`converters.labels.KINS_CATEGORIES`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from amodaldata.errors import AnnotationError, ErrorPolicy, OnError
from amodaldata.masks import iou_matrix
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene

from .coco import InstanceLayout, read_instances, write_instances
from .labels import KINS_TABLE
from .losses import LossReport, Written

#: KINS 2020's order fields: the occlusion cluster of an instance and its rank inside it.
ORDER_FIELDS = ("oco_id", "ico_id")
ORIGINAL = InstanceLayout(
    name="kins", amodal="segmentation", visible="inmodal_seg", invisible=None, amodal_bbox="bbox",
    visible_bbox="inmodal_bbox", occlude_rate=False, amodal_encoding="polygons", visible_encoding="rle",
    table=KINS_TABLE,
)
RELEASE_2020 = InstanceLayout(
    name="kins-2020", amodal="a_segm", visible="i_segm", invisible=None, amodal_bbox="a_bbox",
    visible_bbox="i_bbox", occlude_rate=False, amodal_encoding="polygons", visible_encoding="polygons",
    area="a_area", visible_area="i_area", area_fallback="area",
    native=frozenset({"id", *ORDER_FIELDS}), table=KINS_TABLE,
)


def _layout(data: dict) -> InstanceLayout:
    anns = data.get("annotations") or []
    first = anns[0] if anns and isinstance(anns[0], dict) else {}
    return RELEASE_2020 if "a_segm" in first else ORIGINAL


def cluster_order(raw: list[dict], regions: list[Region]) -> OcclusionOrder:
    """KINS 2020's order: ``ico_id`` ranks inside an ``oco_id`` cluster, the rest derived from the masks."""
    derived = OcclusionOrder.from_masks(regions)
    keys = []
    for ann, region in zip(raw, regions):
        oco, ico = ann.get("oco_id"), ann.get("ico_id")
        for key, value in (("oco_id", oco), ("ico_id", ico)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise AnnotationError(f"'{key}' must be a non-negative int, got {value!r}",
                                      annotation_id=ann.get("id"), region_id=region.id)
        keys.append((oco, ico))
    overlap = iou_matrix([r.amodal for r in regions], [r.amodal for r in regions]) > 0
    edges = set(derived.edges)
    for i, (oco_i, ico_i) in enumerate(keys):
        for j in range(i + 1, len(regions)):
            oco_j, ico_j = keys[j]
            if not overlap[i, j] or oco_i is None or oco_i != oco_j or not ico_i or not ico_j or ico_i == ico_j:
                continue
            front, back = (regions[i].id, regions[j].id) if ico_i < ico_j else (regions[j].id, regions[i].id)
            edges.discard((back, front))
            edges.add((front, back))
    return OcclusionOrder(edges)


def read_kins(path: str | Path, images: str | Path | None = None, *, on_error: OnError | ErrorPolicy = "fail",
              load_images: bool = False, losses: LossReport | None = None) -> Iterator[Scene]:
    """Yield one Scene per image of a KINS file, either release."""
    return read_instances(path, _layout, _read_order, images=images, on_error=on_error,
                          load_images=load_images, losses=losses)


def _read_order(raw: list[dict], regions: list[Region]) -> OcclusionOrder:
    if any("oco_id" in ann for ann in raw):
        return cluster_order(raw, regions)
    return OcclusionOrder.from_masks(regions)


def write_kins(scenes: Iterable[Scene], out: str | Path, *,
               label_map: str | Path | Mapping[str, int | str] | None = None,
               losses: LossReport | None = None, written: Written | None = None) -> int:
    """Write Scenes in the original KINS layout (no order field: use ``kins-2020`` to keep the order);
    return the number of instances written."""
    return write_instances(scenes, out, ORIGINAL, label_map=label_map, losses=losses, written=written)


def write_kins_2020(scenes: Iterable[Scene], out: str | Path, *,
                    label_map: str | Path | Mapping[str, int | str] | None = None,
                    losses: LossReport | None = None, written: Written | None = None) -> int:
    """Write Scenes in the KINS 2020 layout with ``oco_id`` / ``ico_id``; return the number of instances."""
    return write_instances(scenes, out, RELEASE_2020, label_map=label_map, losses=losses, written=written,
                           order_fields=_ClusterIds())


class _ClusterIds:
    """``oco_id`` / ``ico_id`` of a scene's regions.

    The ids a region arrived with (kept in ``Region.extra``) are written back when they still describe the
    scene: every overlapping pair in one cluster with the front one's ``ico_id`` lower, and ``ico_id`` 0
    exactly for the instances overlapping nothing. Otherwise they are computed: clusters are the connected
    components of overlapping instances, numbered on through the file past every id already used, and
    ``ico_id`` is 1 + the longest chain of instances in front.
    """

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.next_cluster = 1

    def __call__(self, scene: Scene, front_to_back: list[int], overlapping: np.ndarray) -> dict[int, dict]:
        pairs = [(int(a), int(b)) for a, b in overlapping]
        given = self._given(scene, front_to_back, pairs)
        if given is not None:
            self.used.update(v["oco_id"] for v in given.values())
            return given
        parent = {rid: rid for rid in front_to_back}

        def root(r: int) -> int:
            while parent[r] != r:
                parent[r] = parent[parent[r]]
                r = parent[r]
            return r

        occluders: dict[int, list[int]] = {rid: [] for rid in front_to_back}
        for front, back in pairs:
            parent[root(front)] = root(back)
            occluders[back].append(front)
        sizes = Counter(root(rid) for rid in front_to_back)
        level: dict[int, int] = {}
        clusters: dict[int, int] = {}
        out = {}
        for rid in front_to_back:
            level[rid] = 1 + max((level[f] for f in occluders[rid]), default=0)
            if root(rid) not in clusters:
                while self.next_cluster in self.used:
                    self.next_cluster += 1
                clusters[root(rid)] = self.next_cluster
                self.used.add(self.next_cluster)
            out[rid] = {"oco_id": clusters[root(rid)], "ico_id": level[rid] if sizes[root(rid)] > 1 else 0}
        return out

    @staticmethod
    def _given(scene: Scene, front_to_back: list[int], pairs: list[tuple[int, int]]) -> dict[int, dict] | None:
        ids = {}
        for region in scene.regions:
            oco, ico = region.extra.get("oco_id"), region.extra.get("ico_id")
            if not (isinstance(oco, int) and isinstance(ico, int)) or isinstance(oco, bool) or isinstance(ico, bool):
                return None
            ids[region.id] = {"oco_id": oco, "ico_id": ico}
        overlapping = {r for pair in pairs for r in pair}
        if any((ids[r]["ico_id"] == 0) == (r in overlapping) for r in front_to_back):
            return None
        for front, back in pairs:
            if ids[front]["oco_id"] != ids[back]["oco_id"] or ids[front]["ico_id"] >= ids[back]["ico_id"]:
                return None
        return ids
