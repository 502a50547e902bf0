"""Ground truth as the evaluation sees it: which annotation of an image is scored, the front-to-back order,
each region's occlusion rate and the mask it is scored as (amodal, or visible with the official fallback).

The occlusion rate is the layer stack's (``LayerStack.occlusion_rate``: the fraction of a region's amodal
pixels covered by a nearer region, COCOA's ``occlude_rate``), counted here on run-length masks in the same
front-to-back order, so scoring a dataset does not rasterise it (the tests check both agree exactly).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Literal

import numpy as np
from pycocotools import mask as cocomask

from ..errors import AmodalDataError
from ..masks import Mask
from ..scene import Scene
from .predictions import image_key

Annotator = Literal["first", "each"]
GtMask = Literal["amodal", "visible", "occluded"]


def sort_key(image_id: Any) -> tuple:
    """Image order of the accumulation (pycocotools sorts the numeric ids): numbers first, then text."""
    if isinstance(image_id, (int, float)) and not isinstance(image_id, bool):
        return (0, image_id, "")
    return (1, 0, str(image_id))


def annotator_passes(scenes: Iterable[Scene], annotator: Annotator) -> list[dict[str, Scene]]:
    """The ground-truth sets to score, each ``{image key: Scene}``.

    ``first``: one set holding the first annotation of every image (what the official COCOA API scores).
    ``each``: set j holds the j-th annotation of every image that has one (BSDS: 5 to 7 annotators); the
    metrics of the sets are then averaged.
    """
    if annotator not in ("first", "each"):
        raise ValueError(f"annotator must be 'first' or 'each', not {annotator!r}")
    by_image: dict[str, list[Scene]] = defaultdict(list)
    for scene in scenes:
        by_image[image_key(scene.id)].append(scene)
    if annotator == "first":
        return [{key: found[0] for key, found in by_image.items()}]
    depth = max((len(found) for found in by_image.values()), default=1)
    return [{key: found[j] for key, found in by_image.items() if len(found) > j} for j in range(depth)]


def front_to_back(scene: Scene) -> list[int]:
    """Region ids nearest first: the order the scene's layer stack is built in (ties broken by depth rank)."""
    ranks = {r.id: r.depth_rank for r in scene.regions if r.depth_rank is not None}
    try:
        return scene.order.front_to_back([r.id for r in scene.regions], tie_break=ranks)
    except AmodalDataError as err:
        raise err.located(image_id=scene.id, annotation_id=scene.annotation_id)


def occlusion_rates(scene: Scene) -> dict[int, float]:
    """Occlusion rate of every region: |pixels of its amodal mask covered by nearer regions| / |amodal mask|
    (0 for an empty mask), equal to ``scene.layers.occlusion_rate(id)``."""
    by_id = {r.id: r for r in scene.regions}
    rates: dict[int, float] = {}
    union = None
    for rid in front_to_back(scene):
        mask = by_id[rid].amodal
        rle = mask.to_pycocotools()
        area = mask.area()
        if union is None:
            hidden = 0
            union = rle
        else:
            hidden = int(cocomask.area(cocomask.merge([rle, union], intersect=True)))
            union = cocomask.merge([union, rle], intersect=False)
        rates[rid] = hidden / area if area else 0.0
    return rates


def scored_masks(scene: Scene, which: GtMask, rates: dict[int, float]) -> list[Mask]:
    """The mask each region is scored as, in region order.

    ``amodal``: the amodal mask. ``visible``: the given visible mask; without one, the amodal mask when the
    region is unoccluded (the official fallback: COCOA stores visible masks only for occluded regions), else
    the visible part read from the layer stack. ``occluded``: the amodal mask minus that visible mask
    (empty for an unoccluded region).
    """
    if which == "amodal":
        return [r.amodal for r in scene.regions]
    if which not in ("visible", "occluded"):
        raise ValueError(f"gt mask must be 'amodal', 'visible' or 'occluded', not {which!r}")
    out = []
    for region in scene.regions:
        if region.visible is not None:
            visible = region.visible
        elif rates[region.id] == 0.0:
            visible = region.amodal
        else:
            visible = Mask.from_bitmap(scene.layers.visible(region.id))
        if which == "occluded":
            visible = Mask.from_bitmap(region.amodal.to_bitmap() & ~visible.to_bitmap())
        out.append(visible)
    return out


def crowd_flags(scene: Scene) -> np.ndarray:
    """:attr:`Region.is_crowd` of each region (crowd regions are matched but never counted)."""
    return np.array([r.is_crowd for r in scene.regions], dtype=bool)
